"""JSON answers whose numbers cannot run away in their digits, installed as a vLLM plugin
(entry point group ``vllm.general_plugins`` in pyproject.toml).

vLLM's guidance backend builds one llguidance matcher per constrained request, in the engine
core, and fills that request's token mask from it every step. For JSON Schema and JSON-object
requests the plugin wraps each such grammar in ``DigitBoundGrammar``, which follows the
schema's matcher with ``server.structured.digits.DigitBound`` (why, and what it allows: that
module's docstring) and clears from the mask what would break the bound. Regex, choice and
Lark requests, and the other backends, are left as vLLM builds them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from server.structured.digits import FRACTION_DIGITS, DigitBound

if TYPE_CHECKING:
    import torch

__all__ = ["DigitBoundGrammar", "bounded_json_grammars", "install"]

log = logging.getLogger("vllm.plugins.wrapserve_number_digits")

CompileGrammar = Callable[..., Any]


class DigitBoundGrammar:
    """A guidance grammar whose masks also keep every number's digits bounded."""

    def __init__(self, grammar: Any, bound: DigitBound) -> None:
        self.grammar = grammar
        self.bound = bound

    def fill_bitmask(self, bitmask: torch.Tensor, idx: int) -> None:
        self.grammar.fill_bitmask(bitmask, idx)
        if not self.grammar.ll_matcher.is_stopped():
            self.bound.narrow(bitmask, idx)

    def accept_tokens(self, request_id: str, tokens: list[int]) -> bool:
        # vLLM's grammar consumes nothing once its matcher has stopped (a trailing EOS is
        # then its rollback_lag) and everything, the end token included, before: the same here.
        stopped = self.grammar.ll_matcher.is_stopped()
        accepted = bool(self.grammar.accept_tokens(request_id, tokens))
        if accepted and not stopped:
            self.bound.consume(tokens)
        return accepted

    def validate_tokens(self, tokens: list[int]) -> list[int]:
        valid: list[int] = self.grammar.validate_tokens(tokens)
        return valid[: self.bound.accepted_prefix(valid)] if valid else valid

    def rollback(self, num_tokens: int) -> None:
        lag = self.grammar.rollback_lag  # an EOS the schema's matcher never consumed
        self.grammar.rollback(num_tokens)
        self.bound.rollback(num_tokens - lag)

    def reset(self) -> None:
        self.grammar.reset()
        self.bound.reset()

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not defined here: is_terminated, check_error, ...
        return getattr(self.grammar, name)


def bounded_json_grammars(original: CompileGrammar) -> CompileGrammar:
    """``GuidanceBackend.compile_grammar`` whose JSON grammars carry a ``DigitBound``."""
    from vllm.v1.structured_output.backend_types import StructuredOutputOptions

    json_kinds = {StructuredOutputOptions.JSON, StructuredOutputOptions.JSON_OBJECT}

    @functools.wraps(original)  # __wrapped__: vLLM's own method, for tests and debugging
    def compile_grammar(self: Any, request_type: Any, *args: Any, **kwargs: Any) -> Any:
        grammar = original(self, request_type, *args, **kwargs)
        if request_type in json_kinds:
            return DigitBoundGrammar(grammar, DigitBound(self.ll_tokenizer))
        return grammar

    compile_grammar._wrapserve_number_digits = True  # type: ignore[attr-defined]
    return compile_grammar


def install() -> None:
    """Wrap the JSON grammars of vLLM's guidance backend (in every vLLM process)."""
    try:
        from vllm.v1.structured_output.backend_guidance import GuidanceBackend
    except ImportError:
        return
    if getattr(GuidanceBackend.compile_grammar, "_wrapserve_number_digits", False):
        return
    GuidanceBackend.compile_grammar = bounded_json_grammars(GuidanceBackend.compile_grammar)  # type: ignore[method-assign]
    log.info("wrapserve: numbers in JSON answers hold at most %d fraction digits", FRACTION_DIGITS)
