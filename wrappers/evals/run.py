"""Evals: run every wrapper's golden examples against the served model and keep the history.

Each wrapper@version the server offers is run through its batch route (so the cases go
to the engine as one continuous batch); a case is *valid* when the server returned an
answer and *passed* when that answer meets the example's expectations. Every run is
stored (``wrappers/evals/store.py``) and compared with the one before it of the same
wrapper@version (on whatever model that ran), or of the previous version, so a model
swap or a prompt change that loses cases shows up as a regression.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from wrappers.base import Example
from wrappers.client import WrapserveClient
from wrappers.evals.store import EvalStore, StoredCase, StoredRun, canonical

__all__ = ["EvalReport", "print_reports", "run_evals"]

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


def _run_cases(client: WrapserveClient, name: str, version: str, examples: list[Example]) -> list[StoredCase]:
    cases: list[StoredCase] = []
    for start in range(0, len(examples), CHUNK):
        chunk = examples[start : start + CHUNK]
        answer = client.batch_raw(name, [example.input for example in chunk], version=version)
        for item in sorted(answer["results"], key=lambda item: item["index"]):
            example = chunk[item["index"]]
            index = start + item["index"]
            if "error" in item:
                error = item["error"]
                cases.append(
                    StoredCase(
                        index,
                        example.input,
                        None,
                        f"{error.get('code')}: {error.get('message')}",
                        (),
                        False,
                        False,
                    )
                )
            else:
                failures = tuple(example.failures(item["output"]))
                cases.append(
                    StoredCase(index, example.input, item["output"], None, failures, True, not failures)
                )
    return cases


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


def run_evals(client: WrapserveClient, store: EvalStore, name: str | None = None) -> list[EvalReport]:
    """Run, store and compare; wrappers without examples are left out."""
    model = client.model()
    reports: list[EvalReport] = []
    for wrapper, version in _targets(client, name):
        described = client.wrapper(wrapper, version)
        examples = [Example.model_validate(example) for example in described["examples"]]
        if not examples:
            continue
        cases = _run_cases(client, wrapper, version, examples)
        run = store.add_run(
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            model=model,
            wrapper=wrapper,
            version=version,
            fingerprint=described["fingerprint"],
            server_url=client.base_url,
            cases=cases,
        )
        reports.append(_compare(store, run, cases))
    return reports


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
