"""The longest string a regex can match, in characters: can an answer under it run away?

A grammar whose every string and list is bounded admits a longest answer; when that fits
``max_tokens`` (a token covers at least one character), the answer can never be cut off.
The bound is read off the regex's syntax tree (a class or a literal is one character, a
concatenation adds, an alternation takes its longest branch, ``{m,n}`` multiplies by
``n``, ``*`` and ``+`` make it unbounded), so it is an upper bound on the true longest
match, exact for the regexes outlines writes.
"""

from __future__ import annotations

import re._constants as sre
import re._parser as sre_parse
from typing import Any

__all__ = ["longest_match"]

_ONE_CHARACTER = {sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN}
_ZERO_WIDTH = {sre.AT, sre.ASSERT, sre.ASSERT_NOT}
_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT}


def longest_match(regex: str) -> int | None:
    """Characters in the longest string ``regex`` can match; None when unbounded (or when
    the regex uses a construct, such as a back-reference, this bound does not follow)."""
    try:
        return _longest(sre_parse.parse(regex))
    except (sre.error, RecursionError):
        return None


def _longest(pattern: Any) -> int | None:
    total = 0
    for op, argument in pattern:
        if op in _ONE_CHARACTER:
            length: int | None = 1
        elif op in _ZERO_WIDTH:
            length = 0
        elif op is sre.SUBPATTERN:
            length = _longest(argument[-1])
        elif op is sre.ATOMIC_GROUP:
            length = _longest(argument)
        elif op is sre.BRANCH:
            branches = [_longest(branch) for branch in argument[1]]
            length = None if None in branches else max(branches, default=0)  # type: ignore[type-var]
        elif op in _REPEATS:
            _, high, item = argument
            inner = _longest(item)
            if inner is None:
                length = None
            elif inner == 0:
                length = 0
            else:
                length = None if high is sre.MAXREPEAT else high * inner
        else:  # GROUPREF, GROUPREF_EXISTS...: not followed, so no bound is claimed
            length = None
        if length is None:
            return None
        total += length
    return total
