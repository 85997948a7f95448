"""Walking a JSON Schema: every subschema once, ``$ref`` targets inside the document included.

Iterative, with a depth bound, so no schema can exhaust the stack; a ``$ref`` outside the
document is refused here, before anything could try to resolve it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from server.structured.keywords import SCHEMA_LIST_KEYWORDS, SCHEMA_MAP_KEYWORDS, SCHEMA_VALUE_KEYWORDS
from wrappers.errors import BadRequest

__all__ = ["SchemaRejected", "children", "json_depth", "pointer", "schemas"]


class SchemaRejected(BadRequest):
    code = "unsupported_schema"


def json_depth(value: Any) -> int:
    """Container nesting of a JSON value, measured without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def pointer(root: Any, ref: str, path: str) -> Any:
    """The node a local ``$ref`` ("#" or "#/a/b") points at, or a 400."""
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        raise SchemaRejected(
            f"{path}/$ref: {ref[:100]!r} is not a reference inside the schema ('#/...'); "
            "nothing outside the document is fetched or read"
        )
    node = root
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise SchemaRejected(f"{path}/$ref: {ref[:100]!r} points at nothing in the schema")
    return node


def children(node: dict[str, Any], path: str) -> Iterator[tuple[str, Any]]:
    for key, value in node.items():
        if key in SCHEMA_MAP_KEYWORDS and isinstance(value, dict):
            for name, sub in value.items():
                yield f"{path}/{key}/{name}", sub
        elif key in SCHEMA_LIST_KEYWORDS and isinstance(value, list):
            for index, sub in enumerate(value):
                yield f"{path}/{key}/{index}", sub
        elif key in SCHEMA_VALUE_KEYWORDS:
            if isinstance(value, list):  # draft-07 tuple ``items``
                for index, sub in enumerate(value):
                    yield f"{path}/{key}/{index}", sub
            else:
                yield f"{path}/{key}", value
        elif key == "dependencies" and isinstance(value, dict):
            for name, sub in value.items():
                if isinstance(sub, dict):
                    yield f"{path}/{key}/{name}", sub


def schemas(
    root: Any, max_depth: int, *, start: tuple[str, Any] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, node) for every object subschema, each once, ``$ref`` targets included;
    ``start`` (its path and node): only the subschemas under that node or referred to from it.

    A generator, so a caller may edit a node before its children are read."""
    seen: set[int] = set()
    stack: list[tuple[str, Any, int]] = [(*(start or ("#", root)), 0)]
    while stack:
        path, node, depth = stack.pop()
        if isinstance(node, bool):
            continue
        if not isinstance(node, dict):
            raise SchemaRejected(f"{path}: a schema must be a JSON object or a boolean")
        if depth > max_depth:
            raise SchemaRejected(f"schema is nested deeper than {max_depth} levels at {path}")
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield path, node
        ref = node.get("$ref")
        if isinstance(ref, str):
            stack.append((ref if ref.startswith("#") else path, pointer(root, ref, path), depth + 1))
        elif ref is not None:
            raise SchemaRejected(f"{path}/$ref: must be a string")
        stack.extend((child_path, child, depth + 1) for child_path, child in children(node, path))
