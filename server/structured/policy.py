"""A JSON Schema read against the keyword table: what the grammar holds, what is validated.

``plan_schema`` walks every subschema (and every subschema a ``$ref`` points at, wherever
it sits), classifies each keyword by ``server/structured/keywords.py``, refuses with a 400
naming the path what can be neither held nor validated, and returns three forms:

- ``grammar``: for llguidance's JSON Schema grammar (vLLM's ``guidance`` backend): the
  validated-only keywords and annotation formats left out, compact JSON required;
- ``validation``: what every answer is checked against (annotation formats left out, as
  2020-12 treats them; everything else as sent);
- ``outlines``: for outlines' regex compiler, only when outlines enforces the schema
  exactly (``server/structured/outlines_form.py``), else None.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from server.structured.keywords import GRAMMAR_FORMATS, KEYWORDS, Enforcement, enforcement_of
from server.structured.outlines_form import outlines_form
from server.structured.recursion import RECURSION_DEPTH, bounded_recursion
from server.structured.schema_walk import SchemaRejected, json_depth, pointer, schemas
from server.structured.validation import is_linear_pattern

__all__ = ["GrammarLimits", "KeywordUse", "SchemaPlan", "SchemaRejected", "json_depth", "plan_schema"]


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


_TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}
# llguidance's options, fixed for every schema (a client's own "x-guidance" is dropped):
# compact JSON, so whitespace cannot run away; oneOf held as anyOf, exclusivity validated.
_GUIDANCE_OPTIONS = {"whitespace_flexible": False, "coerce_one_of": True, "lenient": False}


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
        node = pointer(root, ref, path)
        if id(node) in chain:
            raise SchemaRejected(f"{path}/$ref: a cycle of references that never reaches a schema")
        chain.add(id(node))


# Bounds the grammar adds where a schema has none, so that no answer can run away inside a
# value: integers of at most 18 digits (and numbers' integer part at most 16; their fraction
# is bounded beside the grammar, server/structured/digits.py), and the longest real address or URL.
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
    for path, node in schemas(root, limits.max_depth):
        branches = node.get("allOf")
        if isinstance(branches, list):
            for branch in branches:
                parts.update(id(sub) for _, sub in schemas(root, limits.max_depth, start=(path, branch)))
    return parts


def _for_grammar(root: dict[str, Any], limits: GrammarLimits) -> dict[str, Any]:
    """Leave out what the grammar does not hold; set llguidance's options.

    An object schema that lists ``properties`` and says nothing of others gets no others
    from the grammar (as outlines and xgrammar do, and as OpenAI's strict mode requires):
    JSON Schema would allow them, and a small model, once allowed, keeps adding
    properties until ``max_tokens``. Stricter than the schema, so every answer still
    validates; ``additionalProperties: true`` asks for them. Not inside ``allOf``, whose
    branches each list only their share of the properties."""
    merged = _allof_parts(root, limits)
    for _, node in schemas(root, limits.max_depth):
        _bound_runaways(node)
        others = {"additionalProperties", "patternProperties", "unevaluatedProperties", "allOf"}
        required: list[Any] = node["required"] if isinstance(node.get("required"), list) else []
        listed = node.get("properties") if isinstance(node.get("properties"), dict) else None
        if (
            listed is not None
            and not others & set(node)
            and id(node) not in merged
            and all(name in listed for name in required)  # else the schema itself wants others
        ):
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
    for _, node in schemas(root, limits.max_depth):
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
    for path, node in schemas(schema, limits.max_depth):
        uses.extend(_check_node(path, node, limits))
        _check_ref_chain(schema, node, path)
    grammar = _for_grammar(json.loads(raw), limits)
    bounded = bounded_recursion(grammar, RECURSION_DEPTH)
    return SchemaPlan(
        grammar=bounded if bounded is not None else grammar,
        grammar_unbounded=grammar if bounded is not None else None,
        validation=_for_validation(json.loads(raw), limits),
        outlines=outlines_form(json.loads(raw), limits.max_depth, limits.max_integer_range),
        uses=tuple(uses),
    )
