"""Bounded free text for output schemas, cheap enough for the engine's grammar index.

Greedy decoding with a small model can loop ("How are you? How are you? ..."), so a
generated string needs a bound the grammar enforces. ``maxLength`` is the obvious one
but costs the engine seconds per field to index (a state per character, and vLLM allows
5 s per grammar). These patterns bound what loops are made of instead: clause ends
(``sentences``: . ! ? , ; :) or words (``words``), which takes a handful of automaton states. They
are spelled as alternations, not nested quantifiers, so the backtracking ``re`` that
validates answers stays linear and ``server.structured.grammar`` accepts them.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

__all__ = ["NAME_WORD", "phrase", "prose", "sentences", "words"]

# One character of a JSON string that needs no escape, excluding clause ends. Commas count:
# a model stopped from repeating sentences goes on with ", and ..." otherwise.
_CHAR = r'[^.!?,;:"\\\x00-\x1f]'
_END = r"[.!?,;:]"
# One word: no space, quote, backslash or control character.
_WORD = r'[^ "\\\x00-\x1f]+'
# A word of a name, a date or an amount: letters (Latin-1), digits and a little punctuation.
# Without separators such as ',' '<' '/' '_', the one-word loops small models fall into
# ("Sales,</br>Sales,</br>...") cannot start.
NAME_WORD = r'[^ "\\\x00-\x1f,;:<>/_|()\[\]{}=*#@]+'


def sentences(limit: int) -> str:
    """Non-empty text with at most ``limit`` clause ends (``.`` ``!`` ``?`` ``,`` ``;`` ``:``)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    free = f"{_CHAR}*"
    branches = [f"{_CHAR}{free}" + f"{_END}{free}" * ends for ends in range(limit + 1)]
    return "^(" + "|".join(branches) + ")$"


def words(limit: int, word: str = _WORD) -> str:
    """One to ``limit`` words (each matching ``word``) separated by single spaces."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    return "^(" + "|".join(" ".join([word] * count) for count in range(1, limit + 1)) + ")$"


def prose(limit: int, description: str) -> Any:
    """Field metadata for a string of at most ``limit`` clauses: ``Annotated[str, prose(...)]``."""
    return Field(pattern=sentences(limit), description=description)


def phrase(limit: int, description: str = "", word: str = _WORD) -> Any:
    """Field metadata for a string of at most ``limit`` words (a name, a title, a keyword)."""
    return Field(pattern=words(limit, word), description=description or f"at most {limit} words")
