"""Recursive definitions unrolled to a fixed depth, for the grammar only.

A small model free to nest a recursive definition (a tree, a linked list) can open levels
until ``max_tokens``; outlines bounds its regexes' recursion the same way. Stricter than the
schema, so every answer still validates.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["RECURSION_DEPTH", "bounded_recursion"]

RECURSION_DEPTH = 5
_DEFINITIONS = ("$defs", "definitions")


def _local_refs(node: Any) -> Iterator[str]:
    stack = [node]
    while stack:
        here = stack.pop()
        if isinstance(here, dict):
            if isinstance(ref := here.get("$ref"), str):
                yield ref
            stack.extend(here.values())
        elif isinstance(here, list):
            stack.extend(here)


def bounded_recursion(root: dict[str, Any], depth: int) -> dict[str, Any] | None:
    """``root`` with each recursive definition unrolled ``depth`` levels deep (the last
    level's references to recursion become ``false``), or None when nothing recurses."""
    found = {
        f"#/{key}/{name}": (key, name)
        for key in _DEFINITIONS
        if isinstance(root.get(key), dict)
        for name in root[key]
    }
    if "#" in set(_local_refs(root)):  # the root itself recurses: left as it is
        return None
    edges = {
        ref: {r for r in _local_refs(root[key][name]) if r in found} for ref, (key, name) in found.items()
    }

    def reaches(start: str) -> bool:
        seen, stack = set(), list(edges[start])
        while stack:
            ref = stack.pop()
            if ref == start:
                return True
            if ref not in seen:
                seen.add(ref)
                stack.extend(edges.get(ref, ()))
        return False

    recursive = {ref for ref in found if reaches(ref)}
    if not recursive:
        return None

    def level_ref(ref: str, level: int) -> str:
        key, name = found[ref]
        return f"#/{key}/{name}__depth{level}"

    def rewrite(node: Any, level: int) -> Any:
        """References to recursive definitions point one level deeper (or are false)."""
        if isinstance(node, list):
            return [rewrite(item, level) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref in recursive:
            if level >= depth:
                return False
            return {
                **{k: rewrite(v, level) for k, v in node.items() if k != "$ref"},
                "$ref": level_ref(ref, level),
            }
        return {key: rewrite(value, level) for key, value in node.items()}

    out = {key: rewrite(value, 0) for key, value in root.items() if key not in _DEFINITIONS}
    for key in _DEFINITIONS:
        if isinstance(root.get(key), dict):
            out[key] = {
                name: rewrite(body, 0)
                for name, body in root[key].items()
                if f"#/{key}/{name}" not in recursive
            }
    for ref in recursive:
        key, name = found[ref]
        for level in range(depth):
            out.setdefault(key, {})[f"{name}__depth{level}"] = rewrite(root[key][name], level + 1)
    return out
