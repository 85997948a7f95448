"""Calibrating a scored wrapper's label probabilities: temperature scaling and reliability.

A scored choice answer carries a probability per label (the model's own, renormalised over
the allowed labels). Small models are often over- or under-confident, so the confidence of
an answer says little about how often it is right. Temperature scaling fits one number
``T`` (``p_i`` becomes ``p_i ** (1/T)``, renormalised) that minimises the negative
log-likelihood of the true labels; it never changes which label is ranked first, only how
sure the answer claims to be. ``fit_and_check`` fits on one half of a run's cases (the
even-numbered ones) and measures expected calibration error (ECE, 10 equal-width bins)
before and after on the other half, so the reported gain is on cases the fit never saw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["apply_temperature", "expected_calibration_error", "fit_and_check", "fit_temperature"]

BINS = 10
FLOOR = 1e-9  # a probability the engine rounded to 0 still has a log
_GRID = [math.exp(-3 + 6 * step / 240) for step in range(241)]  # T from 0.05 to 20, log-spaced

Labelled = Sequence[tuple[dict[str, float], str]]  # (scores, true label)


def apply_temperature(scores: dict[str, float], temperature: float) -> dict[str, float]:
    logits = {label: math.log(max(p, FLOOR)) / temperature for label, p in scores.items()}
    top = max(logits.values())
    weights = {label: math.exp(logit - top) for label, logit in logits.items()}
    total = sum(weights.values())
    return {label: weight / total for label, weight in weights.items()}


def _nll(cases: Labelled, temperature: float) -> float:
    return -sum(
        math.log(max(apply_temperature(scores, temperature).get(truth, 0.0), FLOOR))
        for scores, truth in cases
    )


def fit_temperature(cases: Labelled) -> float:
    """The temperature (on a log-spaced grid) with the lowest negative log-likelihood."""
    return min(_GRID, key=lambda temperature: _nll(cases, temperature))


def reliability(cases: Labelled) -> list[dict[str, float | int]]:
    """Per confidence bin: mean confidence, accuracy and count (the reliability diagram)."""
    bins: list[list[tuple[float, bool]]] = [[] for _ in range(BINS)]
    for scores, truth in cases:
        label, confidence = max(scores.items(), key=lambda item: item[1])
        bins[min(int(confidence * BINS), BINS - 1)].append((confidence, label == truth))
    return [
        {
            "low": index / BINS,
            "confidence": sum(c for c, _ in members) / len(members),
            "accuracy": sum(right for _, right in members) / len(members),
            "count": len(members),
        }
        for index, members in enumerate(bins)
        if members
    ]


def expected_calibration_error(cases: Labelled) -> float:
    total = len(cases)
    return sum(
        int(b["count"]) / total * abs(float(b["accuracy"]) - float(b["confidence"]))
        for b in reliability(cases)
    )


def fit_and_check(cases: Labelled) -> dict[str, Any] | None:
    """Fit on the even-numbered cases, report ECE on the odd-numbered ones (None if too few)."""
    fit, held_out = list(cases[0::2]), list(cases[1::2])
    if len(fit) < 4 or len(held_out) < 4:
        return None
    temperature = fit_temperature(fit)
    calibrated = [(apply_temperature(scores, temperature), truth) for scores, truth in held_out]
    return {
        "method": "temperature",
        "temperature": round(temperature, 4),
        "fit_cases": len(fit),
        "held_out_cases": len(held_out),
        "ece_raw": expected_calibration_error(held_out),
        "ece_calibrated": expected_calibration_error(calibrated),
        "reliability_raw": reliability(held_out),
        "reliability_calibrated": reliability(calibrated),
    }
