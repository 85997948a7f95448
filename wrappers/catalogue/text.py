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

__all__ = [
    "NAME_CHAR",
    "NAME_WORD",
    "WORD_CHAR",
    "bounded_phrase",
    "bounded_text",
    "phrase",
    "prose",
    "sentences",
    "words",
]

# One character of a JSON string that needs no escape, excluding clause ends. Commas count:
# a model stopped from repeating sentences goes on with ", and ..." otherwise.
_CHAR = r'[^.!?,;:"\\\x00-\x1f]'
_END = r"[.!?,;:]"
_TEXT_CHAR = r'[^"\\\x00-\x1f]'
# One character of a word: no space, quote, backslash or control character.
WORD_CHAR = r'[^ "\\\x00-\x1f]'
_WORD = WORD_CHAR + "+"
# A character of a name, a date or an amount: letters (Latin-1), digits and a little
# punctuation. Without separators such as ',' '<' '/' '_', the one-word loops small models
# fall into ("Sales,</br>Sales,</br>...") cannot start.
NAME_CHAR = r'[^ "\\\x00-\x1f,;:<>/_|()\[\]{}=*#@]'
NAME_WORD = NAME_CHAR + "+"


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


# The bounded forms below are what the latest catalogue versions use: every string has a
# longest length, so the longest answer a wrapper's grammar admits fits its max_tokens and
# an answer can never be cut off (tests/wrappers/test_bounded_answers.py checks it). The
# unbounded forms above stay for the released versions that were locked with them.


def bounded_text(max_chars: int, description: str) -> Any:
    """Field metadata for non-empty free text of at most ``max_chars`` characters, none of
    them a quote, backslash or control character: its JSON form needs no escape, so the
    answer's length is what the grammar bounds."""
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    return Field(pattern=f"^{_TEXT_CHAR}{{1,{max_chars}}}$", description=description)


def bounded_phrase(limit: int, max_word: int, description: str = "", char: str = WORD_CHAR) -> Any:
    """Field metadata for one to ``limit`` words of one to ``max_word`` characters
    (each a ``char``), separated by single spaces."""
    if max_word < 1:
        raise ValueError("max_word must be at least 1")
    return Field(
        pattern=words(limit, f"{char}{{1,{max_word}}}"),
        description=description or f"at most {limit} words",
    )
