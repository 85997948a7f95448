"""Grammar masks on CPU logits (server/vllm/plugins/cpu_grammar_mask.py): the same logits as xgrammar's
kernel and vLLM's own function give, checked against both. Registration, switch and the
plugin in the engine: test_vllm_plugins.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import xgrammar as xgr
from vllm.v1.structured_output import utils as vllm_utils

from server.vllm.plugins.cpu_grammar_mask import mask_rows, on_cpu_with_numpy

VLLM_APPLY = vllm_utils.apply_grammar_bitmask
if getattr(VLLM_APPLY, "_wrapserve_cpu_masks", False):  # installed in this process already
    VLLM_APPLY = VLLM_APPLY.__wrapped__  # type: ignore[attr-defined]


def _bitmask(rows: int, vocab: int, rng: np.random.Generator) -> np.ndarray:
    """Grammar-like masks: a few allowed tokens per row, one row all allowed, one none."""
    words = -(-vocab // 32)
    allowed = rng.random((rows, words * 32)) < 0.02
    allowed[0] = True
    allowed[-1] = False
    packed = np.packbits(allowed, axis=-1, bitorder="little").view(np.int32)
    return np.ascontiguousarray(packed)


@pytest.mark.filterwarnings("ignore:The bitmask covers only")  # the (96, 100) case, on purpose
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("vocab", "logit_width"), [(49_152, 49_152), (1_000, 1_000), (96, 100)])
def test_mask_rows_matches_xgrammars_kernel(dtype: torch.dtype, vocab: int, logit_width: int) -> None:
    rng = np.random.default_rng(vocab)
    bitmask = _bitmask(6, vocab, rng)
    logits = torch.randn(6, logit_width).to(dtype)
    expected = logits.float()  # xgrammar's CPU kernel takes fp32; bf16 -> fp32 is exact
    xgr.apply_token_bitmask_inplace(expected, torch.from_numpy(bitmask))
    ours = logits.clone()
    mask_rows(ours, bitmask, range(6))
    assert torch.equal(ours.float(), expected)
    assert torch.isinf(ours[-1, : bitmask.shape[1] * 32]).all()  # nothing allowed: all -inf
    assert torch.equal(ours[0], logits[0])  # everything allowed: untouched
    if logit_width > bitmask.shape[1] * 32:  # past the mask's width: left alone, as xgrammar does
        assert torch.equal(ours[:, bitmask.shape[1] * 32 :], logits[:, bitmask.shape[1] * 32 :])


def test_mask_rows_touches_only_the_rows_named() -> None:
    rng = np.random.default_rng(1)
    bitmask = _bitmask(2, 500, rng)
    logits = torch.randn(5, 500)
    by_row = np.full((5, bitmask.shape[1]), -1, dtype=np.int32)  # xgrammar: row i masks logits row i
    by_row[[3, 1]] = bitmask[[1, 0]]
    expected = logits.clone()
    xgr.apply_token_bitmask_inplace(expected, torch.from_numpy(by_row), indices=[3, 1])
    ours = logits.clone()
    mask_rows(ours, bitmask[[1, 0]], [3, 1])
    assert torch.equal(ours, expected)
    assert torch.equal(ours[[0, 2, 4]], logits[[0, 2, 4]])


def _step(batch: list[str], structured: list[str], vocab: int = 4_000) -> tuple[Any, Any, Any, torch.Tensor]:
    """What vLLM's worker passes for one step: the batch order, the structured requests
    (in the scheduler's order, one bitmask row each) and the logits, one row per request."""
    rng = np.random.default_rng(len(batch) * 31 + len(structured))
    scheduler_output = SimpleNamespace(scheduled_spec_decode_tokens={})
    grammar_output = SimpleNamespace(
        structured_output_request_ids=structured, grammar_bitmask=_bitmask(len(structured), vocab, rng)
    )
    return scheduler_output, grammar_output, SimpleNamespace(req_ids=batch), torch.randn(len(batch), vocab)


@pytest.mark.parametrize(
    ("batch", "structured"),
    [
        (["a", "b", "c"], ["a", "b", "c"]),  # all constrained, same order
        (["a", "b", "c", "d"], ["d", "b"]),  # some constrained, in another order than the batch
        (["a", "b"], ["x", "b"]),  # a request the scheduler named that left the batch
    ],
)
def test_the_patched_function_gives_vllms_logits(batch: list[str], structured: list[str]) -> None:
    scheduler_output, grammar_output, input_batch, logits = _step(batch, structured)
    expected = logits.clone()
    VLLM_APPLY(scheduler_output, grammar_output, input_batch, expected)
    on_cpu_with_numpy(VLLM_APPLY)(scheduler_output, grammar_output, input_batch, logits)
    assert torch.equal(logits, expected)


def test_draft_tokens_go_to_vllms_own_function() -> None:
    scheduler_output, grammar_output, input_batch, logits = _step(["a"], ["a"])
    scheduler_output.scheduled_spec_decode_tokens = {"a": [7]}
    seen: list[Any] = []
    on_cpu_with_numpy(lambda *args: seen.append(args))(scheduler_output, grammar_output, input_batch, logits)
    assert len(seen) == 1 and seen[0][3] is logits
