"""Stability: how often a wrapper's answer survives input changes that should not matter.

Every case is answered once as written and once per perturbation kind that applies to it
(``wrappers/evals/perturb.py``); a case is *stable* under a kind when both calls returned
an answer and the two outputs are the same JSON. The shares per kind, the overall share
and the changed cases are stored as the run's metrics (``kind = "stability"``) next to
the usual accuracy of the unperturbed answers.
"""

from __future__ import annotations

from typing import Any

from wrappers.client import WrapserveClient
from wrappers.evals.dataset import Dataset
from wrappers.evals.perturb import KINDS, perturb
from wrappers.evals.run import EvalReport, call_cases, run_dataset
from wrappers.evals.store import EvalStore, canonical

__all__ = ["run_stability"]


def _same(first: dict[str, Any], second: dict[str, Any]) -> bool:
    return (
        "output" in first and "output" in second and canonical(first["output"]) == canonical(second["output"])
    )


def run_stability(
    client: WrapserveClient,
    store: EvalStore,
    described: dict[str, Any],
    dataset: Dataset,
    *,
    model: str,
    seed: int = 0,
) -> EvalReport:
    name, version = described["name"], described["version"]
    inputs = [case.input for case in dataset.cases]
    answers = call_cases(client, name, version, inputs)
    per_kind: dict[str, dict[str, Any]] = {}
    stable_total = perturbed_total = 0
    for kind in KINDS:
        changed = [(index, perturb(value, kind, seed=seed, case=index)) for index, value in enumerate(inputs)]
        applicable = [(index, value) for index, value in changed if value is not None]
        perturbed = call_cases(client, name, version, [value for _, value in applicable])
        unstable = [
            index
            for (index, _), item in zip(applicable, perturbed, strict=True)
            if not _same(answers[index], item)
        ]
        per_kind[kind] = {
            "cases": len(applicable),
            "unchanged": 1 - len(unstable) / len(applicable) if applicable else None,
            "changed_cases": unstable,
        }
        stable_total += len(applicable) - len(unstable)
        perturbed_total += len(applicable)
    stability = {
        "seed": seed,
        "per_kind": per_kind,
        "unchanged": stable_total / perturbed_total if perturbed_total else None,
    }
    return run_dataset(
        client,
        store,
        described,
        dataset,
        model=model,
        kind="stability",
        extra_metrics={"stability": stability},
        items=answers,
    )
