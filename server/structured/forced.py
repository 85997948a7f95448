"""The forced opening of a grammar: text every answer must start with, split off its regex.

A compiled output grammar often allows exactly one way to begin, e.g. ``{"label":"`` for a
one-field object. Decoding that token by token costs one engine step per token for nothing;
instead it goes into the prompt as the start of the assistant turn (prefill, not decode),
and the engine enforces the rest of the regex on what follows.

Only a pure literal at the start of the regex is split off: escaped punctuation and plain
characters without a quantifier, through groups that are not quantified, and the common
literal opening of a group's alternatives. Anything else ends the prefix, so the split is
exact: ``fullmatch(regex, prefix + s)`` holds iff ``fullmatch(remainder, s)`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ForcedPrefix", "split_forced_prefix"]

_META = set(".^$*+?()[]{}|\\")
_QUANTIFIERS = set("*+?{")
# Escapes that are classes or assertions, not the literal character.
_CLASS_ESCAPES = set("dDwWsSbBAZzGnrtfvx0123456789uUNpPk")


@dataclass(frozen=True)
class ForcedPrefix:
    prefix: str
    remainder: str

    def __bool__(self) -> bool:
        return bool(self.prefix)


def _group_end(regex: str, start: int) -> int:
    """Index of the ``)`` closing the group opened at ``start``; -1 if unbalanced."""
    depth, index, in_class = 0, start, False
    while index < len(regex):
        char = regex[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if regex[index + 1 : index + 2] == "]":  # a leading ']' is literal inside a class
                index += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return -1


def _top_level_alternatives(regex: str) -> list[str]:
    parts, depth, index, last, in_class = [], 0, 0, 0, False
    while index < len(regex):
        char = regex[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if regex[index + 1 : index + 2] == "]":
                index += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(regex[last:index])
            last = index + 1
        index += 1
    parts.append(regex[last:])
    return parts


def _quantified(regex: str, index: int) -> bool:
    return index < len(regex) and regex[index] in _QUANTIFIERS


def _split(regex: str, limit: int) -> tuple[str, str]:
    """(literal prefix of at most ``limit`` characters, the regex for the rest)."""
    alternatives = _top_level_alternatives(regex)
    if len(alternatives) > 1:
        prefixes = [_split(alternative, limit)[0] for alternative in alternatives]
        common = 0
        while common < min(len(p) for p in prefixes) and len({p[common] for p in prefixes}) == 1:
            common += 1
        if common == 0:
            return "", regex
        rests = [_split(alternative, common)[1] for alternative in alternatives]
        return prefixes[0][:common], "|".join(rests)
    prefix: list[str] = []
    index = 0
    while index < len(regex) and len(prefix) < limit:
        char = regex[index]
        if char == "\\":
            escaped = regex[index + 1 : index + 2]
            if not escaped or escaped in _CLASS_ESCAPES or _quantified(regex, index + 2):
                break
            prefix.append(escaped)
            index += 2
        elif char == "(":
            end = _group_end(regex, index)
            if end < 0 or regex[index + 1 : index + 2] == "?" or _quantified(regex, end + 1):
                break
            inner = regex[index + 1 : end]
            taken, rest = _split(inner, limit - len(prefix))
            prefix.append(taken)
            if rest:
                return "".join(prefix), f"({rest}){regex[end + 1 :]}"
            index = end + 1
        elif char in _META:
            break
        else:
            if _quantified(regex, index + 1):
                break
            prefix.append(char)
            index += 1
    return "".join(prefix), regex[index:]


def _literal(char: str) -> str:
    """``char`` as a regex both Python's ``re`` and the engine's Rust regex read the same."""
    return "\\" + char if char in _META else char


def split_forced_prefix(regex: str, max_chars: int = 256) -> ForcedPrefix:
    """Split the literal text every match of ``regex`` starts with from the rest of the regex.

    The prefix's closing punctuation (``":"`` of ``{"title":"``) stays in the remainder, for
    two reasons. The engine's grammar then opens with a literal: outlines_core builds the
    token index of a regex that opens with a character class many times slower (measured
    0.3 s against 34 s for a 16-sentence text field whose opening quote was split off). And
    the prompt ends where a tokenizer splits anyway (after a word), so the model decodes the
    tokens it would have chosen itself (``":"`` is one token in common vocabularies) instead
    of continuing from half of one, which derails a small model. One or two decode steps are
    the price.
    """
    prefix, remainder = _split(regex, max_chars)
    kept = len(prefix)
    while kept and not (prefix[kept - 1].isalnum() or prefix[kept - 1] == "_"):
        kept -= 1
    kept = min(kept, len(prefix) - 1)  # at least one literal opens the remainder
    if kept <= 0:
        return ForcedPrefix("", regex)
    held = "".join(_literal(char) for char in prefix[kept:])
    return ForcedPrefix(prefix[:kept], held + remainder)
