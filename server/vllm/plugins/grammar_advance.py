"""Outlines grammars that advance without listing the next allowed tokens, installed as a
vLLM plugin (entry point group ``vllm.general_plugins`` in pyproject.toml).

Every decode step of a constrained request, vLLM's engine core advances the request's
outlines_core ``Guide`` by the sampled token with ``guide.advance(token)``. That call also
returns the list of tokens allowed next, which vLLM discards: it reads the allowed tokens
from the bitmask (``write_mask_into``) instead. Inside a JSON string nearly the whole
vocabulary is allowed, so such an advance builds a Python list of the whole vocabulary,
paid in the engine core's serial work every step while the model waits, where
``advance(token, return_tokens=False)`` builds nothing (``python -m benchmarks.grammar_step``
measures both; what it is worth end to end: benchmarks/RESULTS.md, "The speed-ups").

It acts only when the engine runs vLLM's outlines backend
(``WRAPSERVE_STRUCTURED_OUTPUT_BACKEND=outlines``); on the default, guidance, it is inert.

The plugin wraps each guide vLLM's outlines backend builds in ``QuietGuide``, whose
``advance`` returns nothing unless asked; every other call goes to the guide unchanged.
``WRAPSERVE_FAST_GRAMMAR_ADVANCE=false`` turns it off (read from the environment, as vLLM
starts its processes itself; ``Settings.fast_grammar_advance`` documents the same variable).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from server.vllm.plugins import env_switch

__all__ = ["ENV_SWITCH", "QuietGuide", "install", "quiet_guides", "switched_on"]

ENV_SWITCH = "WRAPSERVE_FAST_GRAMMAR_ADVANCE"
# Under vLLM's logger, so the line lands in the engine log with vLLM's own.
log = logging.getLogger("vllm.plugins.wrapserve_grammar_advance")

CompileGrammar = Callable[..., Any]


def switched_on(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` leaves the plugin on (it is unless ``WRAPSERVE_FAST_GRAMMAR_ADVANCE`` says off)."""
    return env_switch.switched_on(environ, ENV_SWITCH)


class QuietGuide:
    """An outlines_core ``Guide`` whose ``advance`` skips building the next-token list by default."""

    __slots__ = ("guide",)

    def __init__(self, guide: Any) -> None:
        self.guide = guide

    def advance(self, token_id: int, return_tokens: bool = False) -> list[int] | None:
        result: list[int] | None = self.guide.advance(token_id, return_tokens=return_tokens)
        return result

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not defined here: everything but advance.
        return getattr(self.guide, name)


def quiet_guides(original: CompileGrammar) -> CompileGrammar:
    """``OutlinesBackend.compile_grammar`` whose grammars hold their guide in a ``QuietGuide``."""

    @functools.wraps(original)  # __wrapped__: vLLM's own method, for tests and debugging
    def compile_grammar(self: Any, *args: Any, **kwargs: Any) -> Any:
        grammar = original(self, *args, **kwargs)
        guide = getattr(grammar, "guide", None)
        if guide is not None and not isinstance(guide, QuietGuide):
            grammar.guide = QuietGuide(guide)
        return grammar

    compile_grammar._wrapserve_grammar_advance = True  # type: ignore[attr-defined]
    return compile_grammar


def _advance_can_skip_tokens() -> bool:
    try:
        from outlines_core import Guide
    except ImportError:
        return False
    # outlines_core >= 0.2 takes return_tokens; an older guide keeps its own behaviour.
    return "return_tokens" in (getattr(Guide.advance, "__text_signature__", None) or "")


def install() -> None:
    """Wrap the guides of vLLM's outlines backend in ``QuietGuide`` (in every vLLM process)."""
    if not switched_on(os.environ) or not _advance_can_skip_tokens():
        return
    try:
        from vllm.v1.structured_output.backend_outlines import OutlinesBackend
    except ImportError:
        return
    if getattr(OutlinesBackend.compile_grammar, "_wrapserve_grammar_advance", False):
        return
    OutlinesBackend.compile_grammar = quiet_guides(OutlinesBackend.compile_grammar)  # type: ignore[method-assign]
    log.info(
        "wrapserve: outlines grammars advance without listing the next tokens (%s=false: vLLM's way)",
        ENV_SWITCH,
    )
