"""outlines' exact subset: a schema rewritten for outlines' regex compiler, or None.

outlines' JSON Schema compiler ignores some keywords (numeric bounds among them); a schema
goes to it only when every keyword is one it turns into an exact regex (checked against
its source), with small two-sided integer ranges spelled out as enums.
"""

from __future__ import annotations

from typing import Any

from server.structured.keywords import Enforcement, enforcement_of
from server.structured.schema_walk import schemas
from server.structured.validation import is_linear_pattern

__all__ = ["outlines_form"]

_OUTLINES_EXACT = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "$ref",
    "$defs",
    "definitions",
    "pattern",
    "minLength",
    "maxLength",
    "format",
}
_OUTLINES_FORMATS = {"date-time", "date", "time", "uuid", "email", "uri"}
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_LOCAL_DEFINITIONS = ("#/$defs/", "#/definitions/")


def _integer_enum(node: dict[str, Any], max_range: int) -> list[int] | None:
    """A small two-sided integer range, spelled out (outlines ignores numeric bounds)."""
    bounds = {key: node[key] for key in _BOUNDS if key in node}
    if node.get("type") != "integer" or not all(type(v) is int for v in bounds.values()):
        return None
    low = bounds.get("minimum", bounds.get("exclusiveMinimum"))
    high = bounds.get("maximum", bounds.get("exclusiveMaximum"))
    if low is None or high is None:
        return None
    low += 1 if "exclusiveMinimum" in bounds and "minimum" not in bounds else 0
    high -= 1 if "exclusiveMaximum" in bounds and "maximum" not in bounds else 0
    if high < low or high - low + 1 > max_range:
        return None
    return list(range(low, high + 1))


def outlines_form(root: dict[str, Any], max_depth: int, max_range: int) -> dict[str, Any] | None:
    """``root`` rewritten for outlines when outlines enforces it exactly, else None."""
    for _, node in schemas(root, max_depth):
        for key in [k for k in node if enforcement_of(k) is Enforcement.ANNOTATION and k != "format"]:
            del node[key]
        if any(key in node for key in _BOUNDS):
            values = _integer_enum(node, max_range)
            if values is None:
                return None
            for key in _BOUNDS:
                node.pop(key, None)
            node["enum"] = values
        if set(node) - _OUTLINES_EXACT or node.get("format", "date") not in _OUTLINES_FORMATS:
            return None
        ref = node.get("$ref")
        if ref is not None and ref != "#" and not ref.startswith(_LOCAL_DEFINITIONS):
            return None
        if node.get("items") is False or isinstance(node.get("items"), list):
            return None
        if isinstance(node.get("pattern"), str) and not is_linear_pattern(node["pattern"]):
            return None
        if "pattern" in node and ("minLength" in node or "maxLength" in node):
            return None  # outlines keeps the length bounds and drops the pattern
    return root
