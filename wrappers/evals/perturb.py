"""Small input changes that should not change a wrapper's answer, for ``eval --stability``.

Each kind is deterministic for a seed and a case, so two runs (two versions, two models)
perturb the same cases the same way. Text kinds change every top-level string field of
the input; ``order`` reverses the key order of the input and of the objects inside it.
A kind that leaves a case's input as it was is *not applicable* to that case and is left
out of that kind's share, so a share never counts a case that was not actually changed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

__all__ = ["KINDS", "perturb"]

TYPO_EVERY = 8  # one typo per this many words (at least one per text with a long-enough word)
HARMLESS_PREFIX = "Hi, "


def _letter_case(text: str, _: random.Random) -> str:
    return text.lower() if text != text.lower() else text.upper()


def _whitespace(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    if len(words) < 2:
        return f" {text} "
    at = rng.randrange(1, len(words))
    return " ".join(words[:at]) + "  " + " ".join(words[at:]) + " "


def _punctuation(text: str, _: random.Random) -> str:
    stripped = text.rstrip()
    if stripped and stripped[-1] in ".!?;:":
        return stripped.rstrip(".!?;:")
    return stripped + "."


def _typo(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    candidates = [i for i, word in enumerate(words) if re.fullmatch(r"[A-Za-z]{4,}", word)]
    if not candidates:
        return text
    for index in rng.sample(candidates, min(len(candidates), max(1, len(words) // TYPO_EVERY))):
        word = words[index]
        at = rng.randrange(1, len(word) - 2)  # swap two inner letters, keep the first and last
        words[index] = word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    return " ".join(words)


def _prefix(text: str, _: random.Random) -> str:
    return HARMLESS_PREFIX + text


def _reordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(item) for item in value]
    return value


_TEXT_KINDS: dict[str, Callable[[str, random.Random], str]] = {
    "case": _letter_case,
    "whitespace": _whitespace,
    "punctuation": _punctuation,
    "typo": _typo,
    "prefix": _prefix,
}
KINDS = (*_TEXT_KINDS, "order")


def perturb(input: dict[str, Any], kind: str, *, seed: int, case: int) -> dict[str, Any] | None:
    """The case's input changed by ``kind``, or None when the kind does not apply to it."""
    if kind == "order":
        changed = _reordered(input)
        return changed if list(_keys(changed)) != list(_keys(input)) else None
    change = _TEXT_KINDS[kind]
    rng = random.Random(f"{seed}:{case}:{kind}")
    changed = {
        key: change(value, rng) if isinstance(value, str) and value.strip() else value
        for key, value in input.items()
    }
    return changed if changed != input else None


def _keys(value: Any) -> list[str]:
    """Every key in document order, nested ones included (how ``order`` is told apart)."""
    if isinstance(value, dict):
        return [part for key, item in value.items() for part in (key, *_keys(item))]
    if isinstance(value, list):
        return [part for item in value for part in _keys(item)]
    return []
