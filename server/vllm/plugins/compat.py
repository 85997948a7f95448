"""Fixes for older vLLM releases, applied as a vLLM plugin (entry point group
``vllm.general_plugins`` in pyproject.toml).

vLLM loads general plugins in every process it starts, the engine core included: that is
where structured outputs are enforced, and a patch made in the server's own process would
not reach it. Each fix checks for the old code and does nothing on releases that have it fixed.
Wrapserve's own engine targets the release pinned in pyproject.toml; these fixes exist for
nodes that can only take an older vLLM (an air-gapped GPU node whose torch fits vLLM 0.26).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

__all__ = ["apply", "eos_tolerant"]

AcceptTokens = Callable[[Any, str, list[int]], bool]


def apply() -> None:
    _accept_eos_after_outlines_grammar_finished()


def eos_tolerant(original: AcceptTokens) -> AcceptTokens:
    """``OutlinesGrammar.accept_tokens`` that takes EOS once the guide is finished.

    A finished outlines_core guide offers EOS in its mask but cannot advance on it
    (``accepts_tokens([eos])`` is False), so the old method rejects the very token the
    mask allowed. EOS is accepted without advancing (the request stops on it anyway), as
    vLLM's xgrammar and guidance backends do; anything else goes to the original.
    """

    def accept_tokens(self: Any, request_id: str, tokens: list[int]) -> bool:
        guide = self.guide
        if tokens and guide.is_finished() and not guide.accepts_tokens(tokens[:1]):
            return tokens[0] in guide.get_tokens()
        return bool(original(self, request_id, tokens))

    accept_tokens._wrapserve_eos_fix = True  # type: ignore[attr-defined]
    return accept_tokens


def _accept_eos_after_outlines_grammar_finished() -> None:
    # vLLM <= 0.26 (vllm-project/vllm#57723, outlines-core#227): the scheduler fails every
    # outlines-constrained request that ends with EOS ("grammar rejected tokens [eos]").
    # Later releases handle EOS themselves (OutlinesGrammar gained an eos_token_id field).
    try:
        from vllm.v1.structured_output.backend_outlines import OutlinesGrammar
    except ImportError:
        return
    if "eos_token_id" in {f.name for f in dataclasses.fields(OutlinesGrammar)}:
        return
    if getattr(OutlinesGrammar.accept_tokens, "_wrapserve_eos_fix", False):
        return
    OutlinesGrammar.accept_tokens = eos_tolerant(OutlinesGrammar.accept_tokens)  # type: ignore[method-assign,assignment]
