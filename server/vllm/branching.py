"""Continuations scored the way a grammar holding the answer to them would decode it.

With the answer held to a set of continuations (a label set), the model decides only at
the tokens where their token sequences branch; every other token is forced. So a
continuation's probability is the product, over the branch points on its path, of the
model's next-token probability for its branch, renormalized over the branches there.
Labels whose first tokens differ have one branch point, the prompt itself, and one forward
pass scores them all; labels such as "very good" and "very bad" take one more, on the
prompt extended by "very".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from wrappers.errors import BadRequest

__all__ = ["TokenPath", "branch_points", "constrained_logprobs"]

TokenPath = tuple[int, ...]  # the tokens after the prompt that lead to a branch point


def branch_points(continuations: Sequence[Sequence[int]]) -> dict[TokenPath, list[int]]:
    """Each path where the continuations branch -> the distinct tokens that follow it."""
    following: dict[TokenPath, dict[int, None]] = {}
    for tokens in continuations:
        for depth, token in enumerate(tokens):
            following.setdefault(tuple(tokens[:depth]), {})[token] = None
    if any(tuple(tokens) in following for tokens in continuations):
        # The grammar could stop there or go on: no next token decides between the two.
        raise BadRequest("a continuation to score is the start of another")
    return {path: list(tokens) for path, tokens in following.items() if len(tokens) > 1}


def constrained_logprobs(
    continuations: Sequence[Sequence[int]],
    branches: Mapping[TokenPath, Sequence[int]],
    logprob: Mapping[tuple[TokenPath, int], float],
) -> tuple[float, ...]:
    """Each continuation's log-probability under the constraint, from the model's raw
    next-token log-probs at every branch point (``logprob[path, token]``)."""
    norms = {
        path: _logsumexp([logprob[path, token] for token in tokens]) for path, tokens in branches.items()
    }
    return tuple(
        sum(
            logprob[path, token] - norms[path]
            for depth, token in enumerate(tokens)
            if (path := tuple(tokens[:depth])) in branches
        )
        for tokens in continuations
    )


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(value - top) for value in values))
