"""Evals: run a wrapper's golden examples or an eval set against the served model, keep the history.

Cases go through the wrapper's batch route (so they reach the engine as one continuous
batch); a case is *valid* when the server returned an answer and *passed* when that
answer meets the case's expectations and checks. Each run also gets the metrics its
wrapper declares (``wrappers/evals/metrics.py``) and, for scored choices, a calibration
fitted on half of it (``wrappers/evals/calibration.py``). Every run is stored
(``wrappers/evals/store.py``) and compared with the one before it of the same
wrapper@version on the same cases (on whatever model that ran), or of the previous
version, so a model swap or a prompt change that loses cases shows up as a regression.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from wrappers.client import WrapserveClient
from wrappers.evals.calibration import fit_and_check
from wrappers.evals.dataset import Dataset, EvalCase, golden_dataset
from wrappers.evals.metrics import compute_metrics
from wrappers.evals.store import EvalStore, RunKind, StoredCase, StoredRun, canonical

__all__ = ["EvalReport", "call_cases", "print_reports", "run_dataset", "run_eval_sets", "run_evals"]

CHUNK = 16  # cases per batch request, well under the server's batch limit


@dataclass(frozen=True)
class EvalReport:
    """One stored run, with what changed since its baseline."""

    run: StoredRun
    cases: list[StoredCase]
    baseline: StoredRun | None = None
    regressed: list[StoredCase] = field(default_factory=list)  # passed in the baseline, fail now
    fixed: list[StoredCase] = field(default_factory=list)


def _targets(client: WrapserveClient, name: str | None) -> list[tuple[str, str]]:
    """(wrapper, version) pairs to run: every served version, or those of ``NAME[@VERSION]``."""
    if name:
        base, _, pinned = name.partition("@")
        described = client.wrapper(base, pinned or None)
        versions = [described["version"]] if pinned else described["versions"]
        return [(described["name"], version) for version in reversed(versions)]
    # Oldest version first, so a newer version is compared with the older one run just before.
    return [(item["name"], version) for item in client.wrappers() for version in reversed(item["versions"])]


def call_cases(
    client: WrapserveClient, name: str, version: str, inputs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The server's batch item per input, in order (``output`` and ``scores``, or ``error``)."""
    items: list[dict[str, Any]] = []
    for start in range(0, len(inputs), CHUNK):
        answer = client.batch_raw(name, inputs[start : start + CHUNK], version=version)
        items += sorted(answer["results"], key=lambda item: item["index"])
    return items


def _judge(index: int, case: EvalCase, item: dict[str, Any]) -> StoredCase:
    if "error" in item:
        error = item["error"]
        message = f"{error.get('code')}: {error.get('message')}"
        return StoredCase(index, case.input, None, message, (), False, False)
    failures = tuple(case.failures(item["output"]))
    # The model's own scores: a calibration is fitted on them, never on already calibrated ones.
    scores = item.get("raw_scores") or item.get("scores")
    return StoredCase(index, case.input, item["output"], None, failures, True, not failures, scores)


def _calibration(metrics: dict[str, Any], dataset: Dataset, cases: list[StoredCase]) -> dict[str, Any] | None:
    """Temperature scaling of the label scores, for label metrics on scored answers."""
    field = metrics.get("field")
    if metrics.get("metric") != "labels" or not field:
        return None
    labelled = [
        (stored.scores, str(truth))
        for case, stored in zip(dataset.cases, cases, strict=True)
        if stored.scores and (truth := case.truth(field)) is not None
    ]
    return fit_and_check(labelled)


def _compare(store: EvalStore, run: StoredRun, cases: list[StoredCase]) -> EvalReport:
    baseline = store.baseline(run)
    if baseline is None:
        return EvalReport(run, cases)
    before = {canonical(case.input): case for case in store.cases(baseline.id)}
    regressed, fixed = [], []
    for case in cases:
        old = before.get(canonical(case.input))
        if old is not None and old.passed and not case.passed:
            regressed.append(case)
        elif old is not None and not old.passed and case.passed:
            fixed.append(case)
    return EvalReport(run, cases, baseline, regressed, fixed)


def run_dataset(
    client: WrapserveClient,
    store: EvalStore,
    described: dict[str, Any],
    dataset: Dataset,
    *,
    model: str,
    kind: RunKind = "dataset",
    extra_metrics: dict[str, Any] | None = None,
    items: list[dict[str, Any]] | None = None,
) -> EvalReport:
    """Run one dataset on one served wrapper@version (as ``client.wrapper`` describes it),
    store the run with its metrics and calibration, and compare it with its baseline.
    ``items``: the server's answers when the caller already has them (a stability run)."""
    name, version = described["name"], described["version"]
    if items is None:
        items = call_cases(client, name, version, [case.input for case in dataset.cases])
    cases = [
        _judge(index, case, item) for index, (case, item) in enumerate(zip(dataset.cases, items, strict=True))
    ]
    spec = described.get("evals") or {}
    outputs = [case.output for case in cases]
    metrics = compute_metrics(spec.get("metric") or "checks", spec.get("field"), dataset.cases, outputs)
    metrics.update(extra_metrics or {})
    run = store.add_run(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        model=model,
        wrapper=name,
        version=version,
        fingerprint=described["fingerprint"],
        server_url=client.base_url,
        cases=cases,
        kind=kind,
        dataset=dataset.name,
        dataset_hash=dataset.sha256,
        metrics=metrics,
        calibration=_calibration(metrics, dataset, cases),
    )
    return _compare(store, run, cases)


def run_evals(client: WrapserveClient, store: EvalStore, name: str | None = None) -> list[EvalReport]:
    """Every served wrapper@version's golden examples: run, store and compare; wrappers
    without examples are left out."""
    model = client.model()
    reports: list[EvalReport] = []
    for wrapper, version in _targets(client, name):
        described = client.wrapper(wrapper, version)
        if described["examples"]:
            dataset = golden_dataset(described["examples"])
            reports.append(run_dataset(client, store, described, dataset, model=model, kind="golden"))
    return reports


def run_eval_sets(
    client: WrapserveClient, store: EvalStore, name: str, datasets: list[Dataset]
) -> list[EvalReport]:
    """Each dataset on ``NAME[@VERSION]`` (the latest version when none is pinned)."""
    base, _, pinned = name.partition("@")
    described = client.wrapper(base, pinned or None)
    model = client.model()
    return [run_dataset(client, store, described, dataset, model=model) for dataset in datasets]


# -- output ---------------------------------------------------------------------------------------


def _change(report: EvalReport) -> str:
    base = report.baseline
    if base is None:
        return "[dim]first run"
    delta = (report.run.pass_rate - base.pass_rate) * 100
    colour = "red" if delta < 0 else "green" if delta > 0 else "dim"
    against = [f"run #{base.id}"]
    if base.version != report.run.version:
        against.insert(0, base.ref)
    if base.model != report.run.model:
        against.append(f"on {base.model}")
    if base.version == report.run.version and base.fingerprint != report.run.fingerprint:
        against.append("[yellow]fingerprint changed[/]")
    return f"[{colour}]{delta:+.1f} pp[/] vs {' '.join(against)}"


def _describe_case(case: StoredCase) -> str:
    return case.error or "; ".join(case.failures) or "passed"


def print_reports(reports: list[EvalReport], console: Console, *, verbose: bool = False) -> None:
    """A table of pass rates per wrapper@version, then every regression (and fix) by case."""
    if not reports:
        console.print("no wrapper with golden examples to run")
        return
    models = sorted({report.run.model for report in reports})
    table = Table(
        "wrapper@version",
        "cases",
        "valid",
        "passed",
        "pass rate",
        "change",
        title=f"evals on {', '.join(models)}",
    )
    for report in reports:
        run = report.run
        table.add_row(
            run.ref, str(run.cases), str(run.valid), str(run.passed), f"{run.pass_rate:.1%}", _change(report)
        )
    console.print(table)
    for report in reports:
        for case in report.regressed:
            console.print(
                f"[red]regressed[/] {report.run.ref} case {case.index}: {_describe_case(case)}"
                f" (passed in run #{report.baseline.id if report.baseline else '?'})",
                highlight=False,
            )
        for case in report.fixed:
            console.print(f"[green]fixed[/] {report.run.ref} case {case.index}", highlight=False)
        if verbose:
            for case in report.cases:
                if not case.passed:
                    console.print(
                        f"failed {report.run.ref} case {case.index}: {_describe_case(case)}", highlight=False
                    )
    passed = sum(report.run.passed for report in reports)
    cases = sum(report.run.cases for report in reports)
    console.print(
        f"{passed}/{cases} cases passed; runs stored as #{reports[0].run.id}-#{reports[-1].run.id}",
        highlight=False,
    )
