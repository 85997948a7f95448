"""Chat completions through the real ``openai`` SDK against the real server and model."""

from __future__ import annotations

import json
from typing import Literal

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from tests.openai.conftest import MODEL


class City(BaseModel):
    name: str = Field(max_length=30)
    country: str = Field(max_length=30)


class Trip(BaseModel):
    """Nested models give ``$defs``/``$ref`` in the SDK's strict schema."""

    traveller: str = Field(max_length=30)
    mode: Literal["train", "plane", "car"]
    stops: list[City] = Field(max_length=2)
    nights: int


def test_plain_chat_answers_in_openai_shape(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=8,
        temperature=0,
        user="test-user",
        frequency_penalty=0.0,  # a field this server ignores, as OpenAI clients expect
    )
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content
    assert choice.finish_reason in {"stop", "length"}
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0
    assert 0 < usage.completion_tokens <= 8
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_parse_with_a_pydantic_model_returns_the_parsed_object(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You plan trips."},
            {"role": "user", "content": "Anna takes the train from Paris to Berlin for 3 nights."},
        ],
        response_format=Trip,
        temperature=0,
        max_completion_tokens=200,
    )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "stop"
    assert isinstance(message.parsed, Trip)
    assert message.parsed == Trip.model_validate_json(message.content or "")


def test_json_schema_dict_is_enforced(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "string", "enum": ["yes", "no"]},
            "confidence": {"type": "integer", "minimum": 0, "maximum": 10},
        },
        "required": ["answer", "confidence"],
        "additionalProperties": False,
    }
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Is the sky blue?"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "a", "schema": schema, "strict": True},
        },
        temperature=0,
        max_tokens=40,
    )
    jsonschema.validate(json.loads(completion.choices[0].message.content or ""), schema)


def test_json_object_mode_gives_a_json_object(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe a cat as JSON."}],
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=100,
    )
    choice = completion.choices[0]
    if choice.finish_reason == "stop":
        assert isinstance(json.loads(choice.message.content or ""), dict)
    else:  # cut by max_tokens: still a JSON object's beginning
        assert (choice.message.content or "").startswith("{")


def test_n_choices_and_text_parts(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "Name a"}, {"type": "text", "text": "colour."}],
            }
        ],
        n=2,
        temperature=1.0,
        seed=7,
        max_tokens=6,
    )
    assert [choice.index for choice in completion.choices] == [0, 1]
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 12


def test_stop_sequence_ends_the_answer(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count from 1 to 10, separated by commas."}],
        stop=["5"],
        temperature=0,
        max_tokens=60,
    )
    assert "5" not in (completion.choices[0].message.content or "")


def test_logprobs_in_openai_shape(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say yes."}],
        logprobs=True,
        top_logprobs=3,
        temperature=0,
        max_tokens=4,
    )
    choice = completion.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    assert len(choice.logprobs.content) == completion.usage.completion_tokens  # type: ignore[union-attr]
    assert "".join(entry.token for entry in choice.logprobs.content) == choice.message.content
    for entry in choice.logprobs.content:
        assert entry.logprob <= 0
        assert entry.bytes == list(entry.token.encode())
        assert 1 <= len(entry.top_logprobs) <= 3
        # Greedy decoding picks the most likely token.
        assert entry.logprob == pytest.approx(max(top.logprob for top in entry.top_logprobs), abs=1e-3)
