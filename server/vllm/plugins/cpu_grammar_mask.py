"""A faster way for vLLM's CPU worker to apply grammar masks, installed as a vLLM plugin
(entry point group ``vllm.general_plugins`` in pyproject.toml).

Every step of a constrained decode, vLLM's worker sets the logits of the tokens the grammar
forbids to -inf. On a CPU it does so with xgrammar's scalar kernel, and for bf16 logits it
first copies them to fp32 and back; unpacking the mask with numpy and applying it with one
``masked_fill_`` in the logits' own dtype is several times faster (the figures, and what that
is worth end to end: benchmarks/RESULTS.md, "The speed-ups"). The mask is the same whichever
grammar backend filled it, so this serves every backend.

Only the CPU path without speculative tokens is replaced; anything else (GPU logits, draft
tokens) goes to vLLM's own function. ``WRAPSERVE_FAST_CPU_MASKS=false`` turns it off (read
from the environment: vLLM starts its worker processes itself, so no settings object reaches
them; ``Settings.fast_cpu_masks`` documents and validates the same variable).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from server.vllm.plugins import env_switch

if TYPE_CHECKING:  # torch comes with vLLM, into the processes that run this
    import torch

__all__ = ["ENV_SWITCH", "install", "mask_rows", "on_cpu_with_numpy", "switched_on"]

ENV_SWITCH = "WRAPSERVE_FAST_CPU_MASKS"
# Under vLLM's logger, so the line lands in the engine log with vLLM's own.
log = logging.getLogger("vllm.plugins.wrapserve_cpu_masks")

ApplyGrammarBitmask = Callable[[Any, Any, Any, "torch.Tensor"], None]


def switched_on(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` leaves the plugin on (it is unless ``WRAPSERVE_FAST_CPU_MASKS`` says off)."""
    return env_switch.switched_on(environ, ENV_SWITCH)


def mask_rows(logits: torch.Tensor, bitmask: np.ndarray, rows: Sequence[int]) -> None:
    """``logits[rows[k], j] = -inf`` wherever bit ``j`` of ``bitmask[k]`` is 0, in place.

    ``bitmask`` holds one row of int32 words per entry of ``rows``, bit ``j % 32`` of word
    ``j // 32`` for token ``j`` (xgrammar's layout). Logits past the bitmask's width are left
    alone, as xgrammar leaves them. Needs a little-endian machine (see ``install``).
    """
    import torch

    vocab = min(logits.shape[-1], bitmask.shape[-1] * 32)
    # Inverting the words first unpacks "forbidden" directly: one pass fewer over the vocabulary.
    forbidden = np.unpackbits(
        np.ascontiguousarray(np.invert(bitmask)).view(np.uint8), axis=-1, count=vocab, bitorder="little"
    ).view(np.bool_)
    rows = list(rows)
    if rows != list(range(logits.shape[0])):
        every_row = np.zeros((logits.shape[0], vocab), dtype=np.bool_)
        every_row[rows] = forbidden
        forbidden = every_row
    logits[:, :vocab].masked_fill_(torch.from_numpy(forbidden), float("-inf"))


def on_cpu_with_numpy(original: ApplyGrammarBitmask) -> ApplyGrammarBitmask:
    """vLLM's ``apply_grammar_bitmask`` with the CPU path of ``mask_rows``; else ``original``."""

    @functools.wraps(original)  # __wrapped__: vLLM's own function, for tests and debugging
    def apply_grammar_bitmask(
        scheduler_output: Any, grammar_output: Any, input_batch: Any, logits: torch.Tensor
    ) -> None:
        if not logits.is_cpu or scheduler_output.scheduled_spec_decode_tokens:
            return original(scheduler_output, grammar_output, input_batch, logits)
        # Without draft tokens, logits row i belongs to input_batch.req_ids[i], and bitmask
        # row k to grammar_output.structured_output_request_ids[k].
        batch_row = {req_id: row for row, req_id in enumerate(input_batch.req_ids)}
        kept = [
            (k, batch_row[req_id])
            for k, req_id in enumerate(grammar_output.structured_output_request_ids)
            if req_id in batch_row
        ]
        if kept:
            bitmask = np.asarray(grammar_output.grammar_bitmask)
            mask_rows(logits, bitmask[[k for k, _ in kept]], [row for _, row in kept])
        return None

    apply_grammar_bitmask._wrapserve_cpu_masks = True  # type: ignore[attr-defined]
    return apply_grammar_bitmask


def install() -> None:
    """Route vLLM's V1 model runner's CPU grammar masks through ``mask_rows``."""
    if not switched_on(os.environ):
        return
    if sys.byteorder != "little":  # mask_rows reads the int32 words byte by byte
        return
    try:
        from vllm.v1.structured_output import utils
    except ImportError:
        return
    original = getattr(utils, "apply_grammar_bitmask", None)
    if original is None or getattr(original, "_wrapserve_cpu_masks", False):
        return
    patched = on_cpu_with_numpy(original)
    utils.apply_grammar_bitmask = patched  # type: ignore[assignment]
    # The model runner binds the name when it is imported; a runner imported earlier
    # (not the case when vLLM loads its plugins at process start) is patched where it looks.
    runner = sys.modules.get("vllm.v1.worker.gpu_model_runner")
    if runner is not None and getattr(runner, "apply_grammar_bitmask", None) is original:
        runner.apply_grammar_bitmask = patched  # type: ignore[attr-defined]
    log.info(
        "wrapserve: grammar masks on CPU logits are applied with numpy (%s=false: xgrammar's)", ENV_SWITCH
    )
