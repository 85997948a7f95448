"""Answers checked against their schema: bounded time, inside the document only.

``jsonschema_rs`` (Rust) with fancy-regex, which hands any pattern without lookaround or
backreferences whole to the ``regex`` crate: matching in time linear in the answer, so
``^(a+)+$`` or ``(a{1,2}){25}!`` cannot make a check backtrack. Patterns the grammar
cannot hold (lookaround, backreferences: ``is_linear_pattern`` is false) are checked here
only, with backtracking cut at a fixed number of steps. A pattern means the same to both
(Rust regex syntax: ``\\u0021`` is ``!`` to the grammar and to the validator).
Every retrieval is refused: a ``$ref`` to a URL or a file is an
error when the validator is built, never a fetch or a read.
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema_rs

__all__ = ["AnswerValidator", "SchemaInvalid", "is_linear_pattern"]

_MAX_ERRORS = 5
# Bounds on one pattern's compiled program and lazy DFA: a hostile pattern is an error
# when the validator is built, not memory held for the cache's lifetime.
_LIMITS = {"size_limit": 2 * 1024 * 1024, "dfa_size_limit": 2 * 1024 * 1024}
_REGEX = jsonschema_rs.FancyRegexOptions(backtrack_limit=100_000, **_LIMITS)
_LINEAR = jsonschema_rs.RegexOptions(**_LIMITS)


@functools.lru_cache(maxsize=128)  # one schema asks for each of its patterns three times
def is_linear_pattern(pattern: str) -> bool:
    """Whether ``pattern`` builds in the linear-time engine (the grammar's regex subset)."""
    try:
        jsonschema_rs.validator_for({"pattern": pattern}, pattern_options=_LINEAR)
    except (jsonschema_rs.ValidationError, ValueError):
        return False
    return True


class SchemaInvalid(ValueError):
    """The schema itself is not valid (or refers outside the document)."""


def _refuse_retrieval(uri: str) -> Any:
    raise ValueError(f"{uri}: only references inside the schema itself are resolved")


def _tuple_items(schema: Any) -> bool:
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("items"), list):
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


class AnswerValidator:
    """A compiled validator for one schema."""

    def __init__(self, schema: Any) -> None:
        options: dict[str, Any] = {
            "validate_formats": True,
            "retriever": _refuse_retrieval,
            "pattern_options": _REGEX,
        }
        try:
            if isinstance(schema, dict) and "$schema" not in schema and _tuple_items(schema):
                # ``items: [...]`` is draft-07's tuple form; without ``$schema`` it means that.
                self._validator: Any = jsonschema_rs.Draft7Validator(schema, **options)
            else:
                self._validator = jsonschema_rs.validator_for(schema, **options)
        except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as error:
            raise SchemaInvalid(str(error).split("\n\n")[0][:300]) from None

    def errors(self, value: Any) -> list[str]:
        """Up to five readable errors; empty when the value is valid."""
        found = []
        for error in self._validator.iter_errors(value):
            where = "/".join(str(part) for part in error.instance_path) or "(root)"
            found.append(f"{where}: {error.message[:200]}")
            if len(found) == _MAX_ERRORS:
                break
        return found

    def is_valid(self, value: Any) -> bool:
        return bool(self._validator.is_valid(value))
