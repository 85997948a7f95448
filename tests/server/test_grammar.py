"""The schema -> grammar path: what is enforced, what is rejected, and the cache bounds."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from server.structured.grammar import GrammarCompiler, compact_regex
from server.structured.policy import GrammarLimits, SchemaRejected, plan_schema


@pytest.fixture(scope="module")
async def compiler() -> AsyncIterator[GrammarCompiler]:
    compiler = GrammarCompiler(GrammarLimits(cache_entries=8))
    yield compiler
    compiler.shutdown()


async def test_compact_regex_enforces_enum_and_required(compiler: GrammarCompiler) -> None:
    schema = {
        "type": "object",
        "properties": {"label": {"enum": ["yes", "no"]}},
        "required": ["label"],
        "additionalProperties": False,
    }
    grammar = await compiler.compile(schema, prefer="regex")
    assert re.fullmatch(grammar.regex, '{"label":"yes"}')
    assert not re.fullmatch(grammar.regex, '{"label":"maybe"}')
    assert not re.fullmatch(grammar.regex, '{ "label": "yes" }')  # no free whitespace
    assert compact_regex(schema) == grammar.regex  # what benchmarks and tests build it with
    with pytest.raises(SchemaRejected, match="outlines cannot enforce"):
        compact_regex({"not": {"type": "string"}})


async def test_foreign_annotations_are_dropped_not_rejected(compiler: GrammarCompiler) -> None:
    schema = {
        "id": "http://example.com/ticket.json",
        "type": "object",
        "x-generator": "some-tool",
        "properties": {
            "id": {"type": "string", "enum": ["a", "b"], "errorMessage": "must be a or b"},
            "priority": {"enum": ["low", "high"], "x-order": 2, "markdownDescription": "*the* priority"},
        },
        "required": ["id", "priority"],
        "additionalProperties": False,
    }
    grammar = await compiler.compile(schema, prefer="regex")
    assert re.fullmatch(grammar.regex, '{"id":"a","priority":"low"}')
    assert not re.fullmatch(grammar.regex, '{"id":"c","priority":"low"}')
    assert grammar.validation_errors({"id": "c", "priority": "low"})  # still validated in full


async def test_small_integer_range_is_enforced_exactly(compiler: GrammarCompiler) -> None:
    schema = {"type": "integer", "minimum": 1, "maximum": 5}
    grammar = await compiler.compile(schema, prefer="regex")
    assert [n for n in range(-3, 10) if re.fullmatch(grammar.regex, str(n))] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("schema", "phrase"),
    [
        ({"$dynamicRef": "#node"}, "'$dynamicRef'"),
        ({"type": "foo"}, "unknown type 'foo'"),
        ({"type": "object", "properties": {"a": "string"}}, "#/properties/a: a schema must be"),
        ({"enum": [f"v{i}" for i in range(1500)]}, "enum: too large"),
        ({"enum": []}, "empty enum"),
        ({"const": "x" * 300_000}, "bytes; the limit"),
        ({"$ref": "#/$defs/missing"}, "points at nothing"),
        ({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}, "cycle"),
        ({"type": "integer", "minimum": 5, "maximum": 3}, "Unsatisfiable"),
        ({"type": "object", "required": ["b"], "additionalProperties": False}, "Unsatisfiable"),
        ({"type": "string", "pattern": "([a-z"}, "invalid JSON Schema"),
        ("not a schema", "JSON object"),
    ],
)
async def test_unenforceable_or_invalid_schemas_are_rejected(
    compiler: GrammarCompiler, schema: object, phrase: str
) -> None:
    with pytest.raises(SchemaRejected, match=re.escape(phrase)):
        await compiler.compile(schema)


def test_deep_nesting_is_rejected_before_compiling() -> None:
    schema: dict[str, object] = {"type": "string"}
    for _ in range(100):
        schema = {"type": "array", "items": schema}
    with pytest.raises(SchemaRejected, match="nested deeper"):
        plan_schema(schema, GrammarLimits())


async def test_cache_hits_and_stays_bounded(compiler: GrammarCompiler) -> None:
    schema = {"type": "string", "maxLength": 3}
    first = await compiler.compile(schema)
    hits = compiler.hits
    assert await compiler.compile(dict(schema)) is first
    assert compiler.hits == hits + 1
    for length in range(20):  # distinct and cheap (long bounded repetitions are costly to build)
        await compiler.compile({"enum": [f"value-{length}"]})
    assert len(compiler) <= 8


async def test_validator_reports_what_is_wrong(compiler: GrammarCompiler) -> None:
    grammar = await compiler.compile(
        {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    )
    assert grammar.validation_errors({"n": 1}) == []
    assert '"n" is a required property' in grammar.validation_errors({})[0]


def test_numbers_have_bounded_digits_so_a_model_cannot_loop_inside_one() -> None:
    regex = compact_regex(
        {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
            "additionalProperties": False,
        }
    )
    assert "[0-9]*" not in regex and "[0-9]+" not in regex  # outlines' unbounded forms are gone
    assert re.fullmatch(regex, '{"a":-12.5e+3,"b":9007199254740993}')
    assert not re.fullmatch(regex, '{"a":1.' + "0" * 17 + ',"b":1}')
    assert not re.fullmatch(regex, '{"a":1,"b":1' + "0" * 18 + "}")


async def test_a_pattern_with_length_bounds_is_not_left_to_outlines(compiler: GrammarCompiler) -> None:
    """outlines keeps a string's length bounds and drops its pattern: such a schema takes
    llguidance's JSON form, which holds both."""
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 3}},
        "required": ["code"],
    }
    grammar = await compiler.compile(schema, prefer="regex")
    assert grammar.constraint is not None and grammar.constraint.kind == "json"
    alone = await compiler.compile({"type": "string", "pattern": "^[a-z]+$"}, prefer="regex")
    assert alone.constraint is not None and alone.constraint.kind == "regex"
