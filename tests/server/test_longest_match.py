"""The longest-match bound read off a regex's syntax tree."""

from __future__ import annotations

import re

import pytest

from server.structured.longest import longest_match


@pytest.mark.parametrize(
    ("regex", "longest"),
    [
        ("abc", 3),
        ("a{0,5}b", 6),
        ("(a|bcd){2}", 6),
        ("(ab)?c", 3),
        (r'"([^"\\]|\\["\\]){0,4}"', 10),  # a JSON string of at most 4 characters, escapes are two
        ("^x$", 1),
        ("(?=a)a", 1),
        ("[a-z]+", None),
        ("x*y", None),
        (r"(a)\1", None),  # a back-reference is not followed: no bound is claimed
    ],
)
def test_longest_match(regex: str, longest: int | None) -> None:
    assert longest_match(regex) == longest


@pytest.mark.parametrize("regex", ["(ab|c){0,3}d?", "[xy]{2}(z|zz)"])
def test_the_bound_is_reached(regex: str) -> None:
    bound = longest_match(regex)
    assert bound is not None
    alphabet = sorted(set(re.sub(r"[^a-z]", "", regex)))
    words = [""]
    for _ in range(bound + 1):  # every string up to one past the bound
        words += [word + char for word in words if len(word) == len(words[-1]) for char in alphabet]
    matched = [len(word) for word in set(words) if re.fullmatch(regex, word)]
    assert max(matched) == bound
