"""The grammar compiler's vetting of hostile patterns and schemas (no engine needed)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import pytest

from server.structured.grammar import GrammarCompiler, GrammarLimits, SchemaRejected


@pytest.fixture(scope="module")
async def compiler() -> AsyncIterator[GrammarCompiler]:
    compiler = GrammarCompiler(GrammarLimits(compile_timeout_s=5, max_grammar_states=5_000))
    await asyncio.to_thread(compiler.warm_up)
    yield compiler
    compiler.shutdown()


def _with_pattern(pattern: str) -> dict[str, object]:
    return {"type": "object", "properties": {"x": {"type": "string", "pattern": pattern}}, "required": ["x"]}


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("([a-z", 'is not a "regex"'),
        ("a{2,1}", 'is not a "regex"'),
    ],
)
async def test_invalid_patterns_are_rejected(compiler: GrammarCompiler, pattern: str, reason: str) -> None:
    with pytest.raises(SchemaRejected, match=re.escape(reason)):
        await compiler.compile(_with_pattern(pattern))


@pytest.mark.parametrize("pattern", ["^(?!x)(a+)+b$", "^(a)\\1$"])
async def test_lookaround_and_backreferences_are_validated_with_bounded_backtracking(
    compiler: GrammarCompiler, pattern: str
) -> None:
    """No grammar holds them: left out of the grammar, checked by the validator, whose
    backtracking stops at a fixed step count (a hostile answer fails fast, not slowly)."""
    grammar = await compiler.compile(_with_pattern(pattern))
    assert ("#/properties/x", "pattern") in {(use.path, use.keyword) for use in grammar.uses}
    assert grammar.constraint is not None and '"pattern"' not in grammar.constraint.spec
    started = time.monotonic()
    assert grammar.validation_errors({"x": "a" * 100_000 + "c"})
    assert time.monotonic() - started < 1.0


async def test_an_outlines_automaton_too_large_is_rejected(compiler: GrammarCompiler) -> None:
    started = time.monotonic()
    with pytest.raises(SchemaRejected, match="states"):
        await compiler.compile(_with_pattern("[a-z]{1,6000}"), prefer="regex")
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("pattern", ["^(a+)+$", "(a{1,2}){25}\\u0021", "^(x|y+)+$"])
async def test_backtracking_patterns_validate_in_linear_time(compiler: GrammarCompiler, pattern: str) -> None:
    """The classic catastrophic-backtracking shapes: the validator's regex engine is
    linear, so a long hostile answer is checked at once (Python's ``re`` took minutes)."""
    grammar = await compiler.compile(_with_pattern(pattern))
    started = time.monotonic()
    for length in (27, 1_000, 100_000):
        assert grammar.validation_errors({"x": "a" * length + "?"})
    assert time.monotonic() - started < 1.0
    # Grammar and validator read "\\u0021" alike: as "!", not as the six characters.
    if "u0021" in pattern:
        assert not grammar.validation_errors({"x": "a" * 25 + "!"})


@pytest.mark.parametrize("pattern", ["^[a-z]+$", "^(\\d{3}-)+\\d{4}$", "^[A-Z]{2}[0-9]{6}$"])
async def test_ordinary_patterns_compile(compiler: GrammarCompiler, pattern: str) -> None:
    grammar = await compiler.compile(_with_pattern(pattern), prefer="regex")
    assert pattern.strip("^$")[:4] in grammar.regex


async def test_a_slow_build_is_cut_at_the_budget_and_others_are_unharmed(compiler: GrammarCompiler) -> None:
    """A long bounded repetition is exponential to build; it is stopped at the budget,
    and a benign compile running beside it (in the same pool) still succeeds."""
    slow = {"type": "string", "maxLength": 40}
    benign = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    started = time.monotonic()
    results = await asyncio.gather(
        compiler.compile(slow, prefer="regex"),
        compiler.compile(benign, prefer="regex"),
        return_exceptions=True,
    )
    assert isinstance(results[0], SchemaRejected)
    assert "longer than" in results[0].message
    assert not isinstance(results[1], BaseException), results[1]
    assert time.monotonic() - started < 60
    assert (await compiler.compile({"enum": ["after"]}, prefer="regex")).regex


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"x": "string"}},
        {"type": "strnig"},
        {"enum": ["a" * 100_000]},
        {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
    ],
    ids=["property-is-a-string", "unknown-type", "huge-enum", "ref-loop"],
)
async def test_invalid_schemas_are_rejected(compiler: GrammarCompiler, schema: dict[str, object]) -> None:
    with pytest.raises(SchemaRejected):
        await compiler.compile(schema)


async def test_deep_nesting_is_rejected_before_anything_recurses(compiler: GrammarCompiler) -> None:
    schema: dict[str, object] = {"type": "string"}
    for _ in range(5_000):
        schema = {"type": "array", "items": schema}
    with pytest.raises(SchemaRejected, match="nested deeper"):
        await compiler.compile(schema)
