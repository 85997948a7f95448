"""A bound on the digits of every number in a JSON answer, kept beside llguidance's grammar.

llguidance's JSON Schema grammar bounds a number's integer part (from the ``minimum`` and
``maximum`` the policy adds where a schema has none) but not its fraction: a small model can
write ``0.1111...`` until ``max_tokens``. llguidance has no option for it (its compile options
are separators, whitespace and escapes), and its decimal ``multipleOf`` cannot stand in: the
release vLLM takes (< 1.8) admits no negative number under it.

So a second matcher runs beside the schema's, over JSON text read lexically: strings of any
content, ``true``/``false``/``null``, punctuation, and numbers of at most
``FRACTION_DIGITS`` fraction and ``EXPONENT_DIGITS`` exponent digits (each number followed
by punctuation or the end, so two short numbers cannot join into a long one). The tokens
offered are those both allow, so every answer is still one the schema's grammar admits.
Where the schema itself needs a longer number (``exclusiveMinimum: 0.5`` after
``0.500000000000000``) the two masks share nothing: the schema's mask is kept and the bound
is off for the rest of that answer, so the bound never makes a valid answer impossible.
"""

from __future__ import annotations

import enum
from functools import lru_cache
from typing import TYPE_CHECKING

import llguidance
import numpy

if TYPE_CHECKING:
    import torch

__all__ = ["EXPONENT_DIGITS", "FRACTION_DIGITS", "DigitBound", "lexical_json_regex"]

FRACTION_DIGITS = 15  # float64 holds 15-17 significant digits; more is a loop, not a value
EXPONENT_DIGITS = 3  # float64's exponents end at 308
_INTEGER_DIGITS = 19  # the grammar's own integer bounds (policy.py) are tighter still

_STRING = r'"(\\(["\\/bfnrt]|u[0-9a-fA-F]{4})|[^"\\\x00-\x1F])*"'
_PUNCTUATION = r"[\x20\t\n\r{}\[\],:]"


def lexical_json_regex() -> str:
    """JSON text as tokens, each number's digits bounded (strings and nesting are not)."""
    number = (
        rf"-?(0|[1-9][0-9]{{0,{_INTEGER_DIGITS - 1}}})"
        rf"(\.[0-9]{{1,{FRACTION_DIGITS}}})?([eE][+-]?[0-9]{{1,{EXPONENT_DIGITS}}})?"
    )
    return rf"(({_PUNCTUATION}|{_STRING}|true|false|null)|{number}{_PUNCTUATION})*({number})?"


@lru_cache(maxsize=1)
def _lexical_grammar() -> str:
    return llguidance.LLMatcher.grammar_from_regex(lexical_json_regex())


@lru_cache(maxsize=4)  # one tokenizer per engine process
def _fresh_matcher(tokenizer: llguidance.LLTokenizer) -> llguidance.LLMatcher:
    return llguidance.LLMatcher(tokenizer, _lexical_grammar(), log_level=0)


class DigitBound:
    """The lexical matcher of one answer, narrowing the schema matcher's token masks.

    Follows the schema matcher step for step: ``consume`` every token it consumes (the end
    token too), ``rollback`` as it rolls back, ``reset`` with it. Its mask is computed only
    where the text so far ends inside a number (after a digit or minus sign outside a string):
    elsewhere no token of a real vocabulary holds more digits than the bound, so the schema's
    mask is left as it is and the step costs one scan of the token's bytes.

    Where the two masks share nothing the bound steps aside: it counts the tokens consumed
    from there instead of matching them, and a rollback past that point (a speculative path
    the engine rejected) puts it back. A token the lexical matcher refuses ends the bound for
    the answer (llguidance's matchers stay in error); ``reset`` starts a fresh one.
    """

    def __init__(self, tokenizer: llguidance.LLTokenizer) -> None:
        import llguidance.torch as llguidance_torch

        self._tokenizer = tokenizer
        self._matcher = _fresh_matcher(tokenizer).deep_copy()  # building one takes ~1 ms
        self._scratch = llguidance_torch.allocate_token_bitmask(1, tokenizer.vocab_size)
        self._scratch_row = self._scratch[0].numpy()
        self._aside: int | None = None  # tokens consumed since the bound stepped aside
        self._states: list[_Lexeme] = [_Lexeme.OUTSIDE]  # after each matched token

    @property
    def inside_number(self) -> bool:
        return self._states[-1] is _Lexeme.NUMBER

    @property
    def active(self) -> bool:
        return self._aside is None and not self._matcher.is_error()

    def narrow(self, bitmask: torch.Tensor, index: int) -> None:
        """Clear from row ``index`` of a filled token bitmask (on the CPU, as vLLM fills it)
        what breaks the digit bound."""
        if not self.inside_number or not self.active:
            return
        import llguidance.torch as llguidance_torch

        llguidance_torch.fill_next_token_bitmask(self._matcher, self._scratch, 0)
        # numpy on views of the same memory: a few microseconds where torch's calls cost tens.
        row, both = bitmask[index].numpy(), self._scratch_row
        numpy.bitwise_and(both, row, out=both)
        if both.any():
            row[:] = both
        else:  # only a number longer than the bound continues the schema's grammar here
            self._aside = 0

    def consume(self, tokens: list[int]) -> None:
        if self._aside is not None:
            self._aside += len(tokens)
            return
        if self._matcher.is_error() or not self._matcher.consume_tokens(tokens):
            return  # refused: the matcher is in error, the bound is off for this answer
        state = self._states[-1]
        for token in tokens:
            state = _scan(state, self._tokenizer.decode_bytes([token]))
            self._states.append(state)

    def accepted_prefix(self, tokens: list[int]) -> int:
        """How many of ``tokens`` (already accepted by the schema) the bound lets through."""
        return self._matcher.validate_tokens(tokens) if self.active else len(tokens)

    def rollback(self, count: int) -> None:
        if self._aside is not None:
            undone = min(count, self._aside)
            self._aside -= undone
            count -= undone
            if self._aside == 0 and undone > 0:
                self._aside = None  # back before the step that needed a longer number
        if count > 0 and not self._matcher.is_error():
            self._matcher.rollback(count)
            del self._states[max(1, len(self._states) - count) :]

    def reset(self) -> None:
        self._matcher = _fresh_matcher(self._tokenizer).deep_copy()
        self._aside = None
        self._states = [_Lexeme.OUTSIDE]


class _Lexeme(enum.Enum):
    OUTSIDE = "outside"  # between values (or in true/false/null)
    NUMBER = "number"
    STRING = "string"
    ESCAPE = "escape"  # just after a backslash in a string


_NUMBER_STARTS = frozenset(b"-0123456789")
_NUMBER_BYTES = frozenset(b"0123456789.eE+-")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


def _scan(state: _Lexeme, data: bytes) -> _Lexeme:
    for byte in data:
        if state is _Lexeme.ESCAPE:
            state = _Lexeme.STRING
        elif state is _Lexeme.STRING:
            state = _Lexeme.ESCAPE if byte == _BACKSLASH else _Lexeme.OUTSIDE if byte == _QUOTE else state
        elif byte == _QUOTE:
            state = _Lexeme.STRING
        elif state is _Lexeme.NUMBER:
            state = state if byte in _NUMBER_BYTES else _Lexeme.OUTSIDE
        else:  # the "e" of true and false starts no number
            state = _Lexeme.NUMBER if byte in _NUMBER_STARTS else _Lexeme.OUTSIDE
    return state
