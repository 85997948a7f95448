"""No runaway answers: the latest version of every built-in wrapper admits a longest
answer (read off the regex the engine enforces) that fits its ``max_tokens``.

A token covers at least one character, so an answer within the bound can never be cut
off. Per-call schemas are checked on the worst input their wrapper accepts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from server.structured.grammar import GrammarCompiler
from server.structured.longest import longest_match
from wrappers.base import Wrapper
from wrappers.catalogue import BUILTINS
from wrappers.registry import WrapperRegistry

_REGISTRY = WrapperRegistry(BUILTINS)
LATEST = [_REGISTRY.resolve(name) for name in _REGISTRY.names()]
# extract's answer follows the client's schema: bounded when that schema bounds it.
CLIENT_SCHEMA = {"extract"}
# The longest label and intent name the inputs accept, every character one JSON escapes.
WORST_INPUTS: dict[str, dict[str, Any]] = {
    "classify": {"text": "t", "labels": ['"' * 100, "b"]},
    "intent": {"message": "m", "intents": {'"' * 64: "", "b": ""}},
}


@pytest.fixture(scope="module")
def compiler() -> Iterator[GrammarCompiler]:
    grammars = GrammarCompiler()
    yield grammars
    grammars.shutdown()


def _schema(wrapper: type[Wrapper]) -> dict[str, Any]:
    static = wrapper.static_schema()
    if static is not None:
        return static
    return wrapper.output_schema(wrapper.Input.model_validate(WORST_INPUTS[wrapper.name]))


def test_every_latest_wrapper_is_checked() -> None:
    dynamic = {wrapper.name for wrapper in LATEST if wrapper.static_schema() is None}
    assert dynamic == set(WORST_INPUTS) | CLIENT_SCHEMA


@pytest.mark.parametrize("wrapper", [w for w in LATEST if w.name not in CLIENT_SCHEMA], ids=lambda w: w.ref())
def test_the_longest_answer_fits_max_tokens(wrapper: type[Wrapper], compiler: GrammarCompiler) -> None:
    grammar = asyncio.run(compiler.compile(_schema(wrapper), prefer="regex"))
    assert grammar.constraint is not None and grammar.constraint.kind == "regex", (
        "the bound is read off a regex"
    )
    longest = longest_match(grammar.regex)
    assert longest is not None, f"{wrapper.ref()} admits answers of any length"
    assert longest <= wrapper.sampling.max_tokens, f"{wrapper.ref()}: {longest} characters"


def test_the_first_releases_were_unbounded(compiler: GrammarCompiler) -> None:
    """The check can fail: the released versions it replaced admit endless answers."""
    for ref in ("keywords@1.0.0", "fact_check@1.0.0", "report@1.0.0"):
        wrapper = _REGISTRY.resolve(ref)
        grammar = asyncio.run(compiler.compile(_schema(wrapper), prefer="regex"))
        assert longest_match(grammar.regex) is None, ref


def test_classify_refuses_labels_the_bound_does_not_cover() -> None:
    classify = _REGISTRY.resolve("classify")
    with pytest.raises(ValueError, match="control characters"):
        classify.Input.model_validate({"text": "t", "labels": ["a\u0007", "b"]})
