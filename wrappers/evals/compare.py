"""Two stored eval runs side by side: headline metrics and the cases whose answer changed.

Typically two versions of a wrapper on one dataset, or one version on two models. Cases
are matched by their input (canonical JSON), so runs on different files still line up on
the cases they share; ``same_cases`` says whether the two datasets were byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from wrappers.errors import ConfigurationError
from wrappers.evals.store import EvalStore, StoredCase, StoredRun, canonical

__all__ = ["CaseChange", "Comparison", "compare_runs", "describe", "headline", "resolve_run"]

Change = Literal["regressed", "fixed", "changed"]


@dataclass(frozen=True)
class CaseChange:
    before: StoredCase
    after: StoredCase

    @property
    def change(self) -> Change:
        if self.before.passed and not self.after.passed:
            return "regressed"
        if self.after.passed and not self.before.passed:
            return "fixed"
        return "changed"


@dataclass(frozen=True)
class Comparison:
    a: StoredRun
    b: StoredRun
    changes: list[CaseChange]
    shared: int  # cases present in both runs
    same_cases: bool

    def count(self, change: Change) -> int:
        return sum(item.change == change for item in self.changes)


def resolve_run(store: EvalStore, ref: str, like: StoredRun | None = None) -> StoredRun:
    """A run by id (``12`` or ``#12``), or the latest run of ``NAME@VERSION`` (``1`` matches 1.x.y).

    By name, a dataset run is preferred to a golden or stability run, and one on the same
    dataset as ``like`` (the other side of a comparison) to one on another dataset.
    """
    text = ref.removeprefix("#")
    if text.isdigit():
        run = store.run(int(text))
        if run is None:
            raise ConfigurationError(f"no stored eval run #{text}")
        return run
    name, _, version = ref.partition("@")
    runs = [
        run
        for run in store.runs(name)
        if not version or run.version == version or run.version.startswith(version + ".")
    ]
    if not runs:
        raise ConfigurationError(f"no stored eval run of {ref}; run `wrapserve eval {ref}` first")
    return max(
        enumerate(runs),
        key=lambda item: (
            like is not None and item[1].dataset_hash == like.dataset_hash and item[1].kind == like.kind,
            item[1].kind == "dataset",
            item[0],
        ),
    )[1]


def _answer(case: StoredCase) -> str:
    return case.error or canonical(case.output)


def compare_runs(a: StoredRun, b: StoredRun, store: EvalStore) -> Comparison:
    before = {canonical(case.input): case for case in store.cases(a.id)}
    changes: list[CaseChange] = []
    shared = 0
    for case in store.cases(b.id):
        old = before.get(canonical(case.input))
        if old is None:
            continue
        shared += 1
        if _answer(old) != _answer(case) or old.passed != case.passed:
            changes.append(CaseChange(old, case))
    return Comparison(a, b, changes, shared, a.dataset_hash == b.dataset_hash)


def headline(run: StoredRun) -> dict[str, float | None]:
    """The figures worth a row each: the pass rate, then those of the run's metric."""
    metrics = run.metrics
    figures: dict[str, float | None] = {
        "pass rate": run.pass_rate,
        "valid": run.valid / run.cases if run.cases else 0.0,
    }
    kind = metrics.get("metric")
    if kind == "labels":
        figures.update(accuracy=metrics.get("accuracy"), **{"macro F1": metrics.get("macro_f1")})
    elif kind == "fields":
        figures["mean field exact"] = metrics.get("mean_exact")
        for name, scores in metrics.get("per_field", {}).items():
            figures[f"{name} exact"] = scores.get("exact")
            if "f1" in scores:
                figures[f"{name} F1"] = scores["f1"]
    elif kind == "scores":
        figures.update(MAE=metrics.get("mae"), agreement=metrics.get("agreement"))
    stability = metrics.get("stability")
    if stability:
        figures["unchanged (all kinds)"] = stability.get("unchanged")
        for name, result in stability.get("per_kind", {}).items():
            figures[f"unchanged: {name}"] = result.get("unchanged")
    if run.calibration:
        figures["ECE raw"] = run.calibration.get("ece_raw")
        figures["ECE calibrated"] = run.calibration.get("ece_calibrated")
    return figures


def describe(run: StoredRun) -> dict[str, Any]:
    return {
        "run": f"#{run.id}",
        "wrapper": run.ref,
        "model": run.model,
        "fingerprint": run.fingerprint,
        "dataset": f"{run.dataset} ({run.kind}, sha256 {run.dataset_hash[:12] or '-'})",
        "cases": run.cases,
        "when": run.created_at,
    }
