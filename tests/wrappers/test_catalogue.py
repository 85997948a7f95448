"""The built-in catalogue, without the engine: shapes, examples, schemas, prompts."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import get_args

import pytest

from server.structured.grammar import GrammarCompiler
from wrappers.base import Task, Wrapper
from wrappers.catalogue import BUILTINS


@pytest.fixture(scope="module")
def compiler() -> Iterator[GrammarCompiler]:
    grammars = GrammarCompiler()
    yield grammars
    grammars.shutdown()


def _ids(wrapper: type[Wrapper]) -> str:
    return wrapper.ref()


def test_the_catalogue_is_complete_and_unambiguous() -> None:
    assert len(BUILTINS) >= 12
    refs = Counter(wrapper.ref() for wrapper in BUILTINS)
    assert not [ref for ref, count in refs.items() if count > 1], refs
    assert {wrapper.task for wrapper in BUILTINS} == set(get_args(Task))
    for wrapper in BUILTINS:
        assert wrapper.version_tuple()[0] == 1  # no breaking release yet: every name@1 resolves
        assert wrapper.description.strip() and wrapper.instructions.strip()
    # Every name's first release is still served (callers pin name@1.0.0).
    assert {w.name for w in BUILTINS} == {w.name for w in BUILTINS if w.version == "1.0.0"}


@pytest.mark.parametrize("wrapper", BUILTINS, ids=_ids)
def test_examples_are_valid_inputs_with_meaningful_expectations(wrapper: type[Wrapper]) -> None:
    assert len(wrapper.examples) >= 3
    inputs = [wrapper.Input.model_validate(example.input) for example in wrapper.examples]
    assert len({data.model_dump_json() for data in inputs}) == len(inputs), "examples repeat an input"
    for example, data in zip(wrapper.examples, inputs, strict=True):
        properties = wrapper.output_schema(data).get("properties", {})
        if wrapper.static_schema() is not None:  # a per-call schema (extract) has its own fields
            assert set(example.expected) | set(example.accept) <= set(properties)
        for field, values in example.accept.items():
            allowed = properties.get(field, {}).get("enum")
            assert allowed is None or set(values) <= set(allowed), f"{field}: {values} not in {allowed}"


@pytest.mark.parametrize("wrapper", BUILTINS, ids=_ids)
def test_output_schemas_compile_to_a_grammar(wrapper: type[Wrapper], compiler: GrammarCompiler) -> None:
    schemas = [
        wrapper.output_schema(wrapper.Input.model_validate(example.input)) for example in wrapper.examples
    ]
    static = wrapper.static_schema()
    if static is not None:
        assert all(schema == static for schema in schemas)
        schemas = [static]
    for schema in schemas:
        grammar = asyncio.run(compiler.compile(schema, prefer="regex"))  # as a call compiles it
        assert grammar.regex, "outlines enforces every built-in output exactly (forced prefix, scoring)"


@pytest.mark.parametrize("wrapper", BUILTINS, ids=_ids)
def test_the_system_prompt_is_static_and_comes_first(wrapper: type[Wrapper]) -> None:
    first, second = (wrapper.Input.model_validate(example.input) for example in wrapper.examples[:2])
    one, two = wrapper.messages(first), wrapper.messages(second)
    assert [m.role for m in one] == [m.role for m in two] == ["system", "user"]
    static = wrapper.system_prompt()
    assert static.startswith(wrapper.instructions.strip())
    # The system turn opens with the static part, byte-identical across calls; a
    # context_template (a label set, a schema) may close it, and nothing else may.
    for messages in (one, two):
        assert messages[0].content.encode()[: len(static.encode())] == static.encode()
        assert bool(wrapper.context_template) == (messages[0].content != static)
    assert one[1].content != two[1].content
    for data in (first, second):
        for value in data.model_dump().values():
            if isinstance(value, str) and len(value) > 20:
                assert value not in one[0].content, "call input leaked into the static system prompt"


@pytest.mark.parametrize("wrapper", BUILTINS, ids=_ids)
def test_the_system_prompt_shows_the_schema_without_long_patterns(wrapper: type[Wrapper]) -> None:
    """The grammar enforces patterns; a prose bound's ~4,800-character regex in the prompt
    would cost ~4,000 tokens of prefill per call and bury the instructions."""
    prompt = wrapper.system_prompt()
    schema = wrapper.static_schema()
    if schema is not None:
        assert "Its JSON Schema:" in prompt
        for name in schema.get("properties", {}):
            assert f'"{name}"' in prompt, f"field {name} missing from the prompt's schema"
    assert len(prompt) < 3000, f"{len(prompt)} characters"


def test_short_patterns_stay_in_the_prompt() -> None:
    from pydantic import BaseModel, Field

    class Code(Wrapper):
        name = "currency_code"
        version = "1.0.0"
        description = "The currency code a text mentions."
        task = "extract"
        instructions = "Name the currency."
        template = "{{ text }}"

        class Input(BaseModel):
            text: str

        class Output(BaseModel):
            code: str = Field(pattern="^[A-Z]{3}$")
            note: str = Field(pattern="^(" + "|".join(["[a-z]+"] * 20) + ")$")

    prompt = Code.system_prompt()
    assert '"pattern":"^[A-Z]{3}$"' in prompt
    assert "[a-z]+|[a-z]+" not in prompt
