"""Task metrics over an eval run's cases, as plain JSON-able dicts (stored with the run).

Every function takes the cases' expectations and the outputs (None where the call failed,
which counts as wrong, never as skipped). ``labels``: accuracy, per-class precision,
recall and F1, and a confusion matrix; ``fields``: per-field exact match, and for list
fields micro precision/recall/F1 of the items as sets (entity lists match in any order);
``scores``: mean absolute error over the answered cases (``failed`` counts the rest, and
the promotion gate weighs it), and agreement (exact, and within one point) over all cases.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from wrappers.evals.dataset import EvalCase

__all__ = ["ERROR_LABEL", "compute_metrics", "field_metrics", "label_metrics", "score_metrics"]

ERROR_LABEL = "(error)"  # the prediction of a case whose call failed

Outputs = Sequence[dict[str, Any] | None]


def _correct(case: EvalCase, field: str, value: Any) -> bool:
    if field in case.expected:
        return bool(value == case.expected[field])
    return value in case.accept.get(field, [])


def label_metrics(cases: Sequence[EvalCase], outputs: Outputs, field: str) -> dict[str, Any]:
    # An accepted prediction is the case's truth for the confusion matrix, so accuracy and
    # the per-class figures agree on which calls were right.
    pairs: list[tuple[str, str, bool]] = []
    for case, output in zip(cases, outputs, strict=True):
        if case.truth(field) is None:
            continue
        if output is None:
            pairs.append((str(case.truth(field)), ERROR_LABEL, False))
            continue
        value = output.get(field)
        right = _correct(case, field, value)
        pairs.append((str(value if right else case.truth(field)), str(value), right))
    labels = sorted({truth for truth, _, _ in pairs} | {predicted for _, predicted, _ in pairs})
    confusion = {truth: dict.fromkeys(labels, 0) for truth in labels}
    for truth, predicted, _ in pairs:
        confusion[truth][predicted] += 1
    per_class: dict[str, dict[str, float | int]] = {}
    for label in labels:
        if label == ERROR_LABEL:
            continue
        true_positive = confusion[label][label]
        guessed = sum(row[label] for row in confusion.values())
        actual = sum(confusion[label].values())
        precision = true_positive / guessed if guessed else 0.0
        recall = true_positive / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    correct = sum(right for _, _, right in pairs)
    supported = [scores for scores in per_class.values() if scores["support"]]
    return {
        "metric": "labels",
        "field": field,
        "cases": len(pairs),
        "accuracy": correct / len(pairs) if pairs else 0.0,
        "macro_f1": sum(float(s["f1"]) for s in supported) / len(supported) if supported else 0.0,
        "per_class": per_class,
        "labels": labels,
        "confusion": confusion,
    }


def _items(value: Any) -> set[str]:
    return {json.dumps(item, sort_keys=True, ensure_ascii=False) for item in value or []}


def field_metrics(cases: Sequence[EvalCase], outputs: Outputs) -> dict[str, Any]:
    per_field: dict[str, dict[str, float | int]] = {}
    names = sorted({name for case in cases for name in (*case.expected, *case.accept)})
    for name in names:
        judged = [
            (case, output)
            for case, output in zip(cases, outputs, strict=True)
            if case.truth(name) is not None or name in case.expected
        ]
        exact = sum(output is not None and _correct(case, name, output.get(name)) for case, output in judged)
        scores: dict[str, float | int] = {
            "cases": len(judged),
            "exact": exact / len(judged) if judged else 0.0,
        }
        if any(isinstance(case.expected.get(name), list) for case, _ in judged):
            hits = predicted = actual = 0
            for case, output in judged:
                truth = _items(case.expected.get(name))
                guess = _items(output.get(name) if output else None)
                hits += len(truth & guess)
                predicted += len(guess)
                actual += len(truth)
            precision = hits / predicted if predicted else 0.0
            recall = hits / actual if actual else 0.0
            scores.update(
                precision=precision,
                recall=recall,
                f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            )
        per_field[name] = scores
    return {
        "metric": "fields",
        "cases": len(cases),
        "per_field": per_field,
        "mean_exact": sum(float(s["exact"]) for s in per_field.values()) / len(per_field)
        if per_field
        else 0.0,
    }


def score_metrics(cases: Sequence[EvalCase], outputs: Outputs, field: str) -> dict[str, Any]:
    judged = [
        (float(case.expected[field]), output)
        for case, output in zip(cases, outputs, strict=True)
        if isinstance(case.expected.get(field), int | float)
    ]
    answered = [
        (truth, float(output[field]))
        for truth, output in judged
        if output is not None and isinstance(output.get(field), int | float)
    ]
    errors = [abs(truth - guess) for truth, guess in answered]
    return {
        "metric": "scores",
        "field": field,
        "cases": len(judged),
        "answered": len(answered),
        "failed": len(judged) - len(answered),
        "mae": sum(errors) / len(errors) if errors else None,
        "agreement": sum(error == 0 for error in errors) / len(judged) if judged else 0.0,
        "within_one": sum(error <= 1 for error in errors) / len(judged) if judged else 0.0,
    }


def compute_metrics(
    metric: str, field: str | None, cases: Sequence[EvalCase], outputs: Outputs
) -> dict[str, Any]:
    """The wrapper's declared metric (see ``wrappers.base.EvalSpec``); ``checks`` has none
    beyond the pass rate every run reports."""
    if metric == "labels" and field:
        return label_metrics(cases, outputs, field)
    if metric == "scores" and field:
        return score_metrics(cases, outputs, field)
    if metric == "fields":
        return field_metrics(cases, outputs)
    return {"metric": "checks", "cases": len(cases)}
