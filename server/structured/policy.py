"""Which JSON Schemas the grammar can enforce: keyword policy, vetting and rewrites.

``prepare_schema`` checks every keyword of a schema (and the patterns and sizes that could
make a grammar or its validation blow up) and returns the private copy the grammar is
compiled from; anything the grammar cannot enforce is refused with a 400 naming its path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import jsonschema
from referencing import Registry

from wrappers.errors import BadRequest

__all__ = ["GrammarLimits", "SchemaRejected", "answer_validator", "json_depth", "prepare_schema"]

# No resource outside the document: a ``$ref`` to a URL or a file is unresolvable, never
# fetched or read (jsonschema, given no registry, still retrieves remote refs by default).
_DOCUMENT_ONLY: Registry = Registry()

# Annotations and structure outlines turns into an exact grammar.
_ENFORCED = {
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
_ANNOTATIONS = {
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "readOnly",
    "writeOnly",
    "deprecated",
    "contentMediaType",
    "contentEncoding",
    "strict",
}
# Keywords from other vocabularies that say nothing about which answers are valid: draft-04's
# ``id``, ajv-errors' ``errorMessage``, editors' ``markdownDescription``, and ``x-...``
# extensions. They are dropped before compiling, like annotations, instead of rejected.
_FOREIGN_ANNOTATIONS = {"id", "errorMessage", "markdownDescription"}
_FORMATS = {"date-time", "date", "time", "uuid", "email", "uri"}
_TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}
_INTEGER_BOUNDS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
# Keys whose values are maps of name -> schema (not schemas themselves).
_SCHEMA_MAPS = {"properties", "$defs", "definitions"}
_SCHEMA_LISTS = {"anyOf", "oneOf", "prefixItems"}


def answer_validator(schema: Any) -> jsonschema.Draft202012Validator:
    """The validator answers are checked with: 2020-12, formats checked, and refs resolved
    only inside ``schema`` itself."""
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.FormatChecker(), registry=_DOCUMENT_ONLY
    )


class SchemaRejected(BadRequest):
    code = "unsupported_schema"


@dataclass(frozen=True)
class GrammarLimits:
    max_schema_bytes: int = 64_000
    max_depth: int = 32
    max_enum_values: int = 1_000
    max_enum_chars: int = 20_000
    max_integer_range: int = 1_000
    compile_timeout_s: float = 5.0
    max_grammar_states: int = 5_000
    cache_entries: int = 512
    cache_bytes: int = 64 * 1024 * 1024


def _walk(node: Any, path: str, depth: int, limits: GrammarLimits) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (path, schema) for every subschema, rejecting what cannot be a schema."""
    if depth > limits.max_depth:
        raise SchemaRejected(f"schema is nested deeper than {limits.max_depth} levels at {path}")
    if not isinstance(node, dict):
        raise SchemaRejected(f"{path}: a schema must be a JSON object, got {json.dumps(node)[:60]}")
    yield path, node
    for key, value in node.items():
        if key in _SCHEMA_MAPS:
            if not isinstance(value, dict):
                raise SchemaRejected(f"{path}/{key}: must be an object of schemas")
            for name, sub in value.items():
                yield from _walk(sub, f"{path}/{key}/{name}", depth + 1, limits)
        elif key in _SCHEMA_LISTS:
            if not isinstance(value, list) or not value:
                raise SchemaRejected(f"{path}/{key}: must be a non-empty list of schemas")
            for index, sub in enumerate(value):
                yield from _walk(sub, f"{path}/{key}/{index}", depth + 1, limits)
        elif key == "items" and value is not False:
            yield from _walk(value, f"{path}/items", depth + 1, limits)
        elif key == "additionalProperties" and isinstance(value, dict):
            yield from _walk(value, f"{path}/additionalProperties", depth + 1, limits)


def _rewrite_integer_bounds(node: dict[str, Any], path: str, limits: GrammarLimits) -> None:
    """An integer range the grammar can enforce exactly: spell it out as an enum."""
    bounds = {key: node[key] for key in _INTEGER_BOUNDS if key in node}
    if not bounds:
        return
    if node.get("type") != "integer" or not all(isinstance(v, int) for v in bounds.values()):
        raise SchemaRejected(
            f"{path}: numeric bounds ({', '.join(sorted(bounds))}) can only be enforced on integers "
            "with both ends bounded; use an integer range or an enum"
        )
    low = bounds.get("minimum", bounds.get("exclusiveMinimum"))
    high = bounds.get("maximum", bounds.get("exclusiveMaximum"))
    if low is None or high is None:
        raise SchemaRejected(f"{path}: an integer bound on one side only cannot be enforced by the grammar")
    low += 1 if "exclusiveMinimum" in bounds and "minimum" not in bounds else 0
    high -= 1 if "exclusiveMaximum" in bounds and "maximum" not in bounds else 0
    if high < low:
        raise SchemaRejected(f"{path}: the integer range is empty")
    if high - low + 1 > limits.max_integer_range:
        raise SchemaRejected(
            f"{path}: integer range of {high - low + 1} values is too wide to enforce "
            f"(at most {limits.max_integer_range})"
        )
    for key in bounds:
        del node[key]
    node["enum"] = list(range(low, high + 1))


_REPEATS = {sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT}


def _has_variable_repeat(items: Any) -> bool:
    for op, arg in items:
        if op in _REPEATS:
            low, high, body = arg
            if low != high or _has_variable_repeat(body):
                return True
        elif (op == sre_parse.SUBPATTERN and _has_variable_repeat(arg[-1])) or (
            op == sre_parse.BRANCH and any(_has_variable_repeat(branch) for branch in arg[1])
        ):
            return True
    return False


def _check_pattern(pattern: Any, path: str) -> None:
    """Reject nested variable quantifiers such as ``(a+)+b`` or ``(a{1,9})*``.

    They are the classic catastrophic-backtracking shape: harmless to the grammar's
    automaton but not to the backtracking ``re`` that validates answers against the
    schema, nor to whoever reuses the schema elsewhere.
    """
    if not isinstance(pattern, str):
        raise SchemaRejected(f"{path}/pattern: must be a string")
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError) as error:
        raise SchemaRejected(f"{path}/pattern: invalid regular expression: {error}") from None

    def walk(items: Any) -> None:
        for op, arg in items:
            if op in _REPEATS:
                low, high, body = arg
                if low != high and _has_variable_repeat(body):
                    raise SchemaRejected(
                        f"{path}/pattern: nested quantifiers (a repeated group that itself repeats, "
                        "as in '(a+)+') are not accepted; they cause catastrophic backtracking"
                    )
                walk(body)
            elif op == sre_parse.SUBPATTERN:
                walk(arg[-1])
            elif op == sre_parse.BRANCH:
                for branch in arg[1]:
                    walk(branch)

    walk(parsed)


def json_depth(value: Any) -> int:
    """Container nesting of a JSON value, measured without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def prepare_schema(schema: Any, limits: GrammarLimits) -> dict[str, Any]:
    """Check every keyword can be enforced; return the schema the grammar is built from."""
    if not isinstance(schema, dict):
        raise SchemaRejected("the schema must be a JSON object")
    # Depth first: the checks below recurse, and a deep enough schema would exhaust the stack.
    if json_depth(schema) > 2 * limits.max_depth + 4:
        raise SchemaRejected(f"schema is nested deeper than {limits.max_depth} levels")
    raw = json.dumps(schema)
    if len(raw) > limits.max_schema_bytes:
        raise SchemaRejected(f"schema is {len(raw)} bytes; the limit is {limits.max_schema_bytes}")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except RecursionError:
        raise SchemaRejected("schema is too deeply nested or self-referential to check") from None
    except jsonschema.SchemaError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise SchemaRejected(f"invalid JSON Schema at {where}: {error.message[:200]}") from None
    prepared: dict[str, Any] = json.loads(raw)  # a private copy to rewrite
    for path, node in _walk(prepared, "#", 0, limits):
        for key in [k for k in node if k in _FOREIGN_ANNOTATIONS or k.startswith("x-")]:
            del node[key]
        for key in node:
            if key in _ENFORCED or key in _ANNOTATIONS or key in _INTEGER_BOUNDS:
                continue
            raise SchemaRejected(
                f"{path}: the keyword {key!r} cannot be enforced by the grammar; remove it or "
                "express the constraint with supported keywords"
            )
        types = node.get("type")
        for name in types if isinstance(types, list) else [types] if types else []:
            if name not in _TYPES:
                raise SchemaRejected(f"{path}: unknown type {name!r}")
        if "pattern" in node:
            _check_pattern(node["pattern"], path)
        if "format" in node and node["format"] not in _FORMATS:
            raise SchemaRejected(
                f"{path}: format {node['format']!r} is not supported (supported: {', '.join(sorted(_FORMATS))})"
            )
        if "enum" in node:
            values = node["enum"]
            if len(values) > limits.max_enum_values or len(json.dumps(values)) > limits.max_enum_chars:
                raise SchemaRejected(
                    f"{path}: enum too large (at most {limits.max_enum_values} values, "
                    f"{limits.max_enum_chars} characters)"
                )
        _rewrite_integer_bounds(node, path, limits)
    return prepared
