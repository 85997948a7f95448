"""The promotion gate: a version may take a channel only if it evaluates at least as well.

The candidate's latest dataset run (on ``model``, by default the model of that run) is
compared with the latest run of the channel's current version on the same dataset (same
SHA-256) and the same model, on the dataset's headline figure: accuracy for labels, mean
field exact match for extractions, mean absolute error (lower is better) for scores, the
pass rate for checks. The two runs must be judged on the same figure, and for scores (whose
error is over the answered cases only) the candidate may not fail more calls. Missing
evidence refuses too, saying which run to make.
"""

from __future__ import annotations

from dataclasses import dataclass

from wrappers.evals.store import EvalStore, StoredRun

__all__ = ["GateDecision", "gate", "headline_figure"]


def headline_figure(run: StoredRun) -> tuple[str, float, bool]:
    """(name, value, higher_is_better) of the figure a promotion is judged on."""
    metrics = run.metrics
    kind = metrics.get("metric")
    if kind == "labels" and metrics.get("accuracy") is not None:
        return "accuracy", float(metrics["accuracy"]), True
    if kind == "fields" and metrics.get("mean_exact") is not None:
        return "mean field exact", float(metrics["mean_exact"]), True
    if kind == "scores" and metrics.get("mae") is not None:
        return "mean absolute error", float(metrics["mae"]), False
    return "pass rate", run.pass_rate, True


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    reason: str
    candidate: StoredRun | None = None
    current: StoredRun | None = None


def gate(
    store: EvalStore, name: str, candidate: str, current: str | None, model: str | None = None
) -> GateDecision:
    runs = [run for run in store.runs(name) if run.kind == "dataset"]
    mine = [run for run in runs if run.version == candidate and (model is None or run.model == model)]
    if not mine:
        on = f" on {model}" if model else ""
        return GateDecision(
            False,
            f"no dataset eval run of {name}@{candidate}{on}; run `wrapserve eval {name}@{candidate} --eval-sets`",
        )
    latest = mine[-1]
    if current is None or current == candidate:
        return GateDecision(True, f"{name}@{candidate} takes a channel with no other version on it", latest)
    theirs = [
        run
        for run in runs
        if run.version == current and run.dataset_hash == latest.dataset_hash and run.model == latest.model
    ]
    if not theirs:
        return GateDecision(
            False,
            f"no eval run of {name}@{current} on {latest.dataset} (sha256 {latest.dataset_hash[:12]}) with"
            f" {latest.model} to compare with; run `wrapserve eval {name}@{current} --dataset ...` on it",
            latest,
        )
    baseline = theirs[-1]
    figure, value, higher = headline_figure(latest)
    their_figure, before, _ = headline_figure(baseline)
    if figure != their_figure:
        return GateDecision(
            False,
            f"run #{latest.id} of {name}@{candidate} is judged on {figure} and run #{baseline.id} of"
            f" {name}@{current} on {their_figure}; rerun both with the same wrapper metric",
            latest,
            baseline,
        )
    worse = value < before if higher else value > before
    verdict = (
        f"{figure} of {name}@{candidate} {value:.3f} (run #{latest.id}) vs {name}@{current} {before:.3f}"
        f" (run #{baseline.id}) on {latest.dataset} with {latest.model}"
    )
    if worse:
        return GateDecision(False, f"{verdict}: the candidate is worse", latest, baseline)
    failed, failed_before = _failed(latest), _failed(baseline)
    if failed > failed_before:
        return GateDecision(
            False,
            f"{verdict}, but the candidate failed {failed} calls and {name}@{current} {failed_before}",
            latest,
            baseline,
        )
    return GateDecision(True, verdict, latest, baseline)


def _failed(run: StoredRun) -> int:
    """Calls a figure leaves out (scores' error covers answered cases only); 0 where it counts them."""
    return int(run.metrics.get("failed") or 0) if run.metrics.get("metric") == "scores" else 0
