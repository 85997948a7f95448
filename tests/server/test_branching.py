"""Labels scored only where their tokens branch, renormalized there (no engine: the math)."""

from __future__ import annotations

import math

import pytest

from server.vllm.branching import TokenPath, branch_points, constrained_logprobs
from wrappers.errors import BadRequest

# Token ids: 1 "very", 2 " good", 3 " bad", 4 "okay", 9 '"}'
VERY_GOOD, VERY_BAD, OKAY = (1, 2, 9), (1, 3, 9), (4, 9)


def test_distinct_first_tokens_branch_only_at_the_prompt() -> None:
    assert branch_points([(5, 9), (6, 9), (7, 8, 9)]) == {(): [5, 6, 7]}


def test_labels_sharing_a_start_branch_again_where_they_part() -> None:
    assert branch_points([VERY_GOOD, VERY_BAD, OKAY]) == {(): [1, 4], (1,): [2, 3]}


def test_a_shared_start_alone_is_forced_not_a_branch_point() -> None:
    assert branch_points([(1, 2, 9), (1, 3, 9)]) == {(1,): [2, 3]}


def test_a_label_that_is_the_start_of_another_is_refused() -> None:
    with pytest.raises(BadRequest, match="start of another"):
        branch_points([(1, 2), (1, 2, 9)])


def test_probabilities_multiply_along_the_branches_and_sum_to_one() -> None:
    branches = branch_points([VERY_GOOD, VERY_BAD, OKAY])
    # Raw next-token log-probs; the grammar's renormalization is what makes them sum to one.
    raw: dict[tuple[TokenPath, int], float] = {
        ((), 1): math.log(0.3),
        ((), 4): math.log(0.1),
        ((1,), 2): math.log(0.02),
        ((1,), 3): math.log(0.06),
    }
    scores = [math.exp(value) for value in constrained_logprobs([VERY_GOOD, VERY_BAD, OKAY], branches, raw)]
    assert scores == pytest.approx([0.75 * 0.25, 0.75 * 0.75, 0.25])
    assert sum(scores) == pytest.approx(1.0)


def test_forced_tokens_cost_nothing() -> None:
    branches = branch_points([(1, 2, 9), (1, 3, 9)])
    raw: dict[tuple[TokenPath, int], float] = {((1,), 2): math.log(0.2), ((1,), 3): math.log(0.2)}
    scores = constrained_logprobs([(1, 2, 9), (1, 3, 9)], branches, raw)
    assert [math.exp(value) for value in scores] == pytest.approx([0.5, 0.5])
