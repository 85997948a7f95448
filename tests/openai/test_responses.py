"""The Responses API with the official ``openai`` SDK over real HTTP, on the real engine
and model: create, parse (structured output guaranteed), stream, function tools,
conversations through ``previous_response_id``, and a wrapper as a prompt."""

from __future__ import annotations

import json

import jsonschema
import openai
from openai.types.responses import FunctionToolParam
from pydantic import BaseModel, Field

from tests.openai.conftest import MODEL

CITY = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 30}},
    "required": ["city"],
    "additionalProperties": False,
}
# No "strict" key (the SDK's type requires one; clients often leave it out, and the server accepts that).
WEATHER: FunctionToolParam = {  # type: ignore[typeddict-item]
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city.",
    "parameters": CITY,
}


class Animal(BaseModel):
    name: str = Field(max_length=40)
    legs: int = Field(ge=0, le=1000)


def test_create_and_retrieve(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        instructions="Answer in one short sentence.",
        input="What colour is the sky?",
        max_output_tokens=24,
    )
    assert response.status in ("completed", "incomplete") and response.output_text
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert client.responses.retrieve(response.id).output_text == response.output_text


def test_parse_gives_a_valid_object(client: openai.OpenAI) -> None:
    parsed = client.responses.parse(
        model=MODEL, input="Describe a spider as JSON.", text_format=Animal, max_output_tokens=200
    )
    assert parsed.status == "completed"
    assert isinstance(parsed.output_parsed, Animal)


def test_stream_deltas_make_the_final_text(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model=MODEL, input="Count from one to five.", max_output_tokens=24
    ) as stream:
        events = list(stream)
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    last = events[-1]
    # Cut off by max_output_tokens, a stream ends with response.incomplete, as OpenAI's does.
    assert last.type in ("response.completed", "response.incomplete")
    assert deltas and deltas == last.response.output_text
    assert [event.sequence_number for event in events] == list(range(len(events)))


def test_a_function_call_and_its_output_continue_the_conversation(client: openai.OpenAI) -> None:
    called = client.responses.create(
        model=MODEL,
        input="What is the weather in Paris?",
        tools=[WEATHER],
        tool_choice="required",
        max_output_tokens=64,
    )
    [call] = called.output
    assert call.type == "function_call" and call.name == "get_weather"
    jsonschema.validate(json.loads(call.arguments), CITY)
    answered = client.responses.create(
        model=MODEL,
        previous_response_id=called.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 24 C."}],
        max_output_tokens=24,
    )
    assert answered.output[0].type == "message" and answered.output_text
    plain = client.responses.create(model=MODEL, input="Sunny, 24 C.", max_output_tokens=4)
    assert answered.usage is not None and plain.usage is not None
    # The earlier turns (the question and the call) are in the prompt, not the output alone.
    assert answered.usage.input_tokens > plain.usage.input_tokens + 5


def test_a_wrapper_as_a_prompt(client: openai.OpenAI) -> None:
    response = client.responses.create(
        prompt={"id": "sentiment", "variables": {"text": "I love this phone, it is wonderful!"}}
    )
    assert json.loads(response.output_text)["label"] in ("positive", "negative", "neutral")
    extra = response.model_extra or {}
    assert extra["wrapper"]["name"] == "sentiment" and extra["wrapper"]["fingerprint"].startswith("sha256:")
