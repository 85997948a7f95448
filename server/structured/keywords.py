"""How every JSON Schema keyword is enforced: the one table, as data.

Each assertion keyword is in exactly one class:

- ``grammar``: the constrained-decoding grammar only lets answers through that satisfy it;
- ``validated``: no grammar can hold it (``uniqueItems``, ``not``...), so it is left out of
  the grammar and every answer is validated against it, with a bounded resample when the
  answer fails;
- ``refused``: neither works; the schema is answered with a 400 naming the keyword.

Every answer is validated against the whole schema in every class, so a grammar that is
looser than the schema somewhere (``oneOf`` is held as ``anyOf``) costs a resample, never
an invalid 200. Any other keyword is an annotation (JSON Schema 2020-12: an unknown
keyword is ignored), and so is a ``format`` the grammar cannot express.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "GRAMMAR_FORMATS",
    "KEYWORDS",
    "SCHEMA_LIST_KEYWORDS",
    "SCHEMA_MAP_KEYWORDS",
    "SCHEMA_VALUE_KEYWORDS",
    "Enforcement",
    "enforcement_of",
]


class Enforcement(StrEnum):
    GRAMMAR = "grammar"
    VALIDATED = "validated"
    REFUSED = "refused"
    ANNOTATION = "annotation"


# keyword -> (class, what the README says about it)
KEYWORDS: dict[str, tuple[Enforcement, str]] = {
    "type": (Enforcement.GRAMMAR, ""),
    "enum": (Enforcement.GRAMMAR, ""),
    "const": (Enforcement.GRAMMAR, ""),
    "properties": (Enforcement.GRAMMAR, ""),
    "required": (Enforcement.GRAMMAR, ""),
    "additionalProperties": (Enforcement.GRAMMAR, "boolean or schema"),
    "patternProperties": (Enforcement.GRAMMAR, ""),
    "minProperties": (Enforcement.GRAMMAR, ""),
    "maxProperties": (Enforcement.GRAMMAR, ""),
    "items": (Enforcement.GRAMMAR, ""),
    "prefixItems": (Enforcement.GRAMMAR, ""),
    "additionalItems": (Enforcement.GRAMMAR, "draft-07 tuples"),
    "minItems": (Enforcement.GRAMMAR, ""),
    "maxItems": (Enforcement.GRAMMAR, ""),
    "minLength": (Enforcement.GRAMMAR, ""),
    "maxLength": (Enforcement.GRAMMAR, ""),
    "pattern": (Enforcement.GRAMMAR, "validated instead when it uses lookaround or backreferences"),
    "format": (Enforcement.GRAMMAR, "the formats in GRAMMAR_FORMATS; any other format is an annotation"),
    "minimum": (Enforcement.GRAMMAR, "integers and numbers, any width"),
    "maximum": (Enforcement.GRAMMAR, "integers and numbers, any width"),
    "exclusiveMinimum": (Enforcement.GRAMMAR, "integers and numbers, any width"),
    "exclusiveMaximum": (Enforcement.GRAMMAR, "integers and numbers, any width"),
    "multipleOf": (Enforcement.GRAMMAR, ""),
    "anyOf": (Enforcement.GRAMMAR, ""),
    "oneOf": (Enforcement.GRAMMAR, "held as anyOf by the grammar; exclusivity is validated"),
    "allOf": (Enforcement.GRAMMAR, "merged"),
    "$ref": (Enforcement.GRAMMAR, "references inside the document only, recursion included"),
    "$defs": (Enforcement.GRAMMAR, ""),
    "definitions": (Enforcement.GRAMMAR, ""),
    "uniqueItems": (Enforcement.VALIDATED, ""),
    "not": (Enforcement.VALIDATED, ""),
    "if": (Enforcement.VALIDATED, ""),
    "then": (Enforcement.VALIDATED, ""),
    "else": (Enforcement.VALIDATED, ""),
    "dependentRequired": (Enforcement.VALIDATED, ""),
    "dependentSchemas": (Enforcement.VALIDATED, ""),
    "dependencies": (Enforcement.VALIDATED, "draft-07"),
    "contains": (Enforcement.VALIDATED, ""),
    "minContains": (Enforcement.VALIDATED, ""),
    "maxContains": (Enforcement.VALIDATED, ""),
    "propertyNames": (Enforcement.VALIDATED, ""),
    "unevaluatedProperties": (Enforcement.VALIDATED, ""),
    "unevaluatedItems": (Enforcement.VALIDATED, ""),
    "$dynamicRef": (Enforcement.REFUSED, "dynamic scope: no grammar backend resolves it"),
    "$dynamicAnchor": (Enforcement.REFUSED, "dynamic scope: no grammar backend resolves it"),
    "$recursiveRef": (Enforcement.REFUSED, "draft 2019-09 dynamic scope"),
    "$recursiveAnchor": (Enforcement.REFUSED, "draft 2019-09 dynamic scope"),
}

# Formats the grammar spells out exactly; the validator checks the same ones.
GRAMMAR_FORMATS = frozenset(
    {"date", "time", "date-time", "duration", "email", "hostname", "ipv4", "ipv6", "uri", "uuid"}
)

# Where subschemas sit, so the walk never mistakes a property named "not" for the keyword.
SCHEMA_MAP_KEYWORDS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
SCHEMA_LIST_KEYWORDS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
SCHEMA_VALUE_KEYWORDS = frozenset(
    {
        "items",
        "additionalItems",
        "additionalProperties",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "propertyNames",
        "unevaluatedProperties",
        "unevaluatedItems",
    }
)


def enforcement_of(keyword: str) -> Enforcement:
    entry = KEYWORDS.get(keyword)
    return Enforcement.ANNOTATION if entry is None else entry[0]
