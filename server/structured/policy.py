"""A JSON Schema read against the keyword table: what the grammar holds, what is validated.

``plan_schema`` walks every subschema (and every subschema a ``$ref`` points at, wherever
it sits), classifies each keyword by ``server/structured/keywords.py``, refuses with a 400
naming the path what can be neither held nor validated, and returns three forms:

- ``grammar``: for llguidance's JSON Schema grammar (vLLM's ``guidance`` backend): the
  validated-only keywords and annotation formats left out, compact JSON required;
- ``validation``: what every answer is checked against (annotation formats left out, as
  2020-12 treats them; everything else as sent);
- ``outlines``: for outlines' regex compiler, only when outlines enforces the schema
  exactly (its keyword subset, small integer ranges spelled out as enums), else None.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from server.structured.keywords import (
    GRAMMAR_FORMATS,
    KEYWORDS,
    SCHEMA_LIST_KEYWORDS,
    SCHEMA_MAP_KEYWORDS,
    SCHEMA_VALUE_KEYWORDS,
    Enforcement,
    enforcement_of,
)
from server.structured.validation import is_linear_pattern
from wrappers.errors import BadRequest

__all__ = ["GrammarLimits", "KeywordUse", "SchemaPlan", "SchemaRejected", "json_depth", "plan_schema"]


class SchemaRejected(BadRequest):
    code = "unsupported_schema"


@dataclass(frozen=True)
class GrammarLimits:
    max_schema_bytes: int = 256_000
    max_depth: int = 32
    max_enum_values: int = 1_000
    max_enum_chars: int = 20_000
    max_integer_range: int = 1_000  # widest integer range outlines' form spells out as an enum
    compile_timeout_s: float = 5.0
    max_grammar_states: int = 5_000  # of an outlines regex's automaton, on a small vocabulary
    cache_entries: int = 512
    cache_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class KeywordUse:
    path: str
    keyword: str
    enforcement: Enforcement


@dataclass(frozen=True)
class SchemaPlan:
    grammar: dict[str, Any]
    validation: dict[str, Any]
    # The grammar form without its recursion unrolled, for when the bounded one is
    # unsatisfiable (a recursion every answer must go deeper in); None: no recursion.
    grammar_unbounded: dict[str, Any] | None
    outlines: dict[str, Any] | None
    uses: tuple[KeywordUse, ...]

    @property
    def validated_only(self) -> bool:
        return any(use.enforcement is Enforcement.VALIDATED for use in self.uses)


_TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}
# llguidance's options, fixed for every schema (a client's own "x-guidance" is dropped):
# compact JSON, so whitespace cannot run away; oneOf held as anyOf, exclusivity validated.
_GUIDANCE_OPTIONS = {"whitespace_flexible": False, "coerce_one_of": True, "lenient": False}


def json_depth(value: Any) -> int:
    """Container nesting of a JSON value, measured without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _pointer(root: Any, ref: str, path: str) -> Any:
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


def _children(node: dict[str, Any], path: str) -> Iterator[tuple[str, Any]]:
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


def _schemas(root: Any, limits: GrammarLimits) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, node) for every object subschema, each once, ``$ref`` targets included.

    A generator, so a caller may edit a node before its children are read."""
    seen: set[int] = set()
    stack: list[tuple[str, Any, int]] = [("#", root, 0)]
    while stack:
        path, node, depth = stack.pop()
        if isinstance(node, bool):
            continue
        if not isinstance(node, dict):
            raise SchemaRejected(f"{path}: a schema must be a JSON object or a boolean")
        if depth > limits.max_depth:
            raise SchemaRejected(f"schema is nested deeper than {limits.max_depth} levels at {path}")
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield path, node
        ref = node.get("$ref")
        if isinstance(ref, str):
            stack.append((ref if ref.startswith("#") else path, _pointer(root, ref, path), depth + 1))
        elif ref is not None:
            raise SchemaRejected(f"{path}/$ref: must be a string")
        stack.extend((child_path, child, depth + 1) for child_path, child in _children(node, path))


def _check_node(path: str, node: dict[str, Any], limits: GrammarLimits) -> list[KeywordUse]:
    uses = []
    for key, value in node.items():
        enforcement = enforcement_of(key)
        if key == "format":
            if not isinstance(value, str):
                raise SchemaRejected(f"{path}/format: must be a string")
            enforcement = Enforcement.GRAMMAR if value in GRAMMAR_FORMATS else Enforcement.ANNOTATION
        if key == "pattern" and isinstance(value, str) and not is_linear_pattern(value):
            enforcement = Enforcement.VALIDATED  # lookaround or a backreference: no grammar holds it
        if enforcement is Enforcement.REFUSED:
            raise SchemaRejected(
                f"{path}: the keyword {key!r} cannot be enforced ({KEYWORDS[key][1]}); remove it",
                keyword=key,
                path=path,
            )
        if enforcement is not Enforcement.ANNOTATION:
            uses.append(KeywordUse(path, key, enforcement))
    types = node.get("type")
    for name in types if isinstance(types, list) else [types] if types is not None else []:
        if name not in _TYPES:
            raise SchemaRejected(f"{path}/type: unknown type {name!r}")
    if "enum" in node:
        values = node["enum"]
        if not isinstance(values, list) or not values:
            raise SchemaRejected(f"{path}/enum: must be a non-empty list; no answer can match an empty enum")
        if len(values) > limits.max_enum_values or len(json.dumps(values)) > limits.max_enum_chars:
            raise SchemaRejected(
                f"{path}/enum: too large (at most {limits.max_enum_values} values, "
                f"{limits.max_enum_chars} characters)"
            )
    return uses


def _check_ref_chain(root: dict[str, Any], node: dict[str, Any], path: str) -> None:
    """Refuse ``$ref``s that only lead to each other (``a -> b -> a``): no schema at the end."""
    chain = {id(node)}
    while isinstance(node, dict) and isinstance(ref := node.get("$ref"), str):
        if (
            set(node)
            - {"$ref", "$defs", "definitions"}
            - {k for k in node if enforcement_of(k) is Enforcement.ANNOTATION}
        ):
            return  # the node constrains something itself
        node = _pointer(root, ref, path)
        if id(node) in chain:
            raise SchemaRejected(f"{path}/$ref: a cycle of references that never reaches a schema")
        chain.add(id(node))


# Bounds the grammar adds where a schema has none, so that no answer can run away inside a
# value: integers of at most 18 digits (and numbers' integer part at most 16: a fraction
# stays unbounded, llguidance has no bound for it), and the longest real address or URL.
_INTEGER_LIMIT = 10**18 - 1
_NUMBER_LIMIT = 1e16
_FORMAT_LENGTHS = {"email": 254, "hostname": 253, "uri": 2083}
_EMAIL = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,64}(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,64}){0,4}@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,4}[A-Za-z]{2,24}$"


def _bound_runaways(node: dict[str, Any]) -> None:
    types = node.get("type")
    names = set(types) if isinstance(types, list) else {types}
    if names & {"integer", "number"}:
        limit: float = _INTEGER_LIMIT if "number" not in names else _NUMBER_LIMIT
        low = _number(node.get("minimum", node.get("exclusiveMinimum")))
        high = _number(node.get("maximum", node.get("exclusiveMaximum")))
        if low is None and (high is None or high > -limit):
            node["minimum"] = -limit
        if high is None and (low is None or low < limit):
            node["maximum"] = limit
    format_name = node.get("format")
    if "maxLength" not in node and isinstance(format_name, str) and format_name in _FORMAT_LENGTHS:
        node["maxLength"] = _FORMAT_LENGTHS[format_name]
    if format_name == "email" and "pattern" not in node:
        # The addresses people use (RFC 5322's quoted and IP-literal forms left out): a
        # dot-atom local part and a domain with a top-level label, each part bounded.
        del node["format"]
        node["pattern"] = _EMAIL


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _allof_parts(root: dict[str, Any], limits: GrammarLimits) -> set[int]:
    """ids of the nodes ``allOf`` merges: its branches, what they refer to, and below."""
    parts: set[int] = set()
    for path, node in _schemas(root, limits):
        branches = node.get("allOf")
        if isinstance(branches, list):
            for branch in branches:
                parts.update(id(sub) for _, sub in _schemas_below(root, branch, path, limits))
    return parts


def _schemas_below(
    root: dict[str, Any], node: Any, path: str, limits: GrammarLimits
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, node) for ``node`` and every subschema under it or referred to from it."""
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [(path, node)]
    while stack:
        here, sub = stack.pop()
        if not isinstance(sub, dict) or id(sub) in seen or len(seen) > 10_000:
            continue
        seen.add(id(sub))
        yield here, sub
        if isinstance(ref := sub.get("$ref"), str):
            stack.append((ref, _pointer(root, ref, here)))
        stack.extend(_children(sub, here))


def _for_grammar(root: dict[str, Any], limits: GrammarLimits) -> dict[str, Any]:
    """Leave out what the grammar does not hold; set llguidance's options.

    An object schema that lists ``properties`` and says nothing of others gets no others
    from the grammar (as outlines and xgrammar do, and as OpenAI's strict mode requires):
    JSON Schema would allow them, and a small model, once allowed, keeps adding
    properties until ``max_tokens``. Stricter than the schema, so every answer still
    validates; ``additionalProperties: true`` asks for them. Not inside ``allOf``, whose
    branches each list only their share of the properties."""
    merged = _allof_parts(root, limits)
    for _, node in _schemas(root, limits):
        _bound_runaways(node)
        others = {"additionalProperties", "patternProperties", "unevaluatedProperties", "allOf"}
        if "properties" in node and not others & set(node) and id(node) not in merged:
            node["additionalProperties"] = False
        for key in [k for k in node if enforcement_of(k) is Enforcement.VALIDATED or k == "x-guidance"]:
            del node[key]
        if isinstance(node.get("format"), str) and node["format"] not in GRAMMAR_FORMATS:
            del node["format"]
        if isinstance(node.get("pattern"), str) and not is_linear_pattern(node["pattern"]):
            del node["pattern"]
    root["x-guidance"] = dict(_GUIDANCE_OPTIONS)
    return root


def _for_validation(root: dict[str, Any], limits: GrammarLimits) -> dict[str, Any]:
    for _, node in _schemas(root, limits):
        if isinstance(node.get("format"), str) and node["format"] not in GRAMMAR_FORMATS:
            del node["format"]
    return root


def plan_schema(schema: Any, limits: GrammarLimits) -> SchemaPlan:
    """Check every keyword against the table; return the schema's three forms."""
    if not isinstance(schema, dict):
        raise SchemaRejected("the schema must be a JSON object")
    # Depth first: everything below walks the schema, and a deep enough one would exhaust it.
    if json_depth(schema) > 2 * limits.max_depth + 4:
        raise SchemaRejected(f"schema is nested deeper than {limits.max_depth} levels")
    try:
        raw = json.dumps(schema, ensure_ascii=False)
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise SchemaRejected("the schema holds a lone surrogate (invalid Unicode)") from None
    if len(raw) > limits.max_schema_bytes:
        raise SchemaRejected(f"schema is {len(raw)} bytes; the limit is {limits.max_schema_bytes}")
    uses: list[KeywordUse] = []
    for path, node in _schemas(schema, limits):
        uses.extend(_check_node(path, node, limits))
        _check_ref_chain(schema, node, path)
    grammar = _for_grammar(json.loads(raw), limits)
    bounded = bounded_recursion(grammar, RECURSION_DEPTH)
    return SchemaPlan(
        grammar=bounded if bounded is not None else grammar,
        grammar_unbounded=grammar if bounded is not None else None,
        validation=_for_validation(json.loads(raw), limits),
        outlines=outlines_form(json.loads(raw), limits),
        uses=tuple(uses),
    )


# -- recursion, bounded ---------------------------------------------------------------

# How deep the grammar lets a recursive definition nest (outlines bounds its regexes the
# same way): a small model, free to nest, can open levels until max_tokens.
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


# -- outlines' exact subset --------------------------------------------------------------

# What outlines' JSON Schema compiler turns into an exact regex (checked against its
# source); anything else goes to llguidance instead.
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


def _integer_enum(node: dict[str, Any], limits: GrammarLimits) -> list[int] | None:
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
    if high < low or high - low + 1 > limits.max_integer_range:
        return None
    return list(range(low, high + 1))


def outlines_form(root: dict[str, Any], limits: GrammarLimits) -> dict[str, Any] | None:
    """``root`` rewritten for outlines when outlines enforces it exactly, else None."""
    for _, node in _schemas(root, limits):
        for key in [k for k in node if enforcement_of(k) is Enforcement.ANNOTATION and k != "format"]:
            del node[key]
        if any(key in node for key in _BOUNDS):
            values = _integer_enum(node, limits)
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
    return root
