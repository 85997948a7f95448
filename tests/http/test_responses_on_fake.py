"""The Responses API's HTTP shape with the official ``openai`` SDK, on the fake engine:
create, parse, stream, tools, stored responses and conversations, wrappers as prompts.

What the real model does through it is proved by tests/openai/test_responses.py."""

from __future__ import annotations

import json
from typing import Literal

import httpx
import openai
import pytest
from openai.types.responses import FunctionToolParam
from pydantic import BaseModel

from tests.http.conftest import MODEL

WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


class Verdict(BaseModel):
    label: Literal["yes", "no"]
    reason: str


async def test_create_answers_text_with_usage_and_is_stored(fake_openai: openai.AsyncOpenAI) -> None:
    response = await fake_openai.responses.create(
        model=MODEL,
        input="Say hello.",
        instructions="Be brief.",
        max_output_tokens=12,
        metadata={"team": "a"},
    )
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status in ("completed", "incomplete") and response.output_text
    assert response.output[0].type == "message" and response.output[0].role == "assistant"
    assert response.usage is not None and response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0 and response.usage.input_tokens_details.cached_tokens >= 0
    assert response.metadata == {"team": "a"} and response.instructions == "Be brief."
    again = await fake_openai.responses.retrieve(response.id)
    assert again.output_text == response.output_text and again.id == response.id
    items = await fake_openai.responses.input_items.list(response.id)
    assert [item.type for item in items.data] == ["message"]
    assert items.data[0].content[0].text == "Say hello."  # type: ignore[index, union-attr]


async def test_a_cut_off_answer_is_incomplete_with_the_reason(fake_openai: openai.AsyncOpenAI) -> None:
    response = await fake_openai.responses.create(
        model=MODEL, input="Write a long story.", max_output_tokens=2
    )
    assert response.status == "incomplete"
    assert (
        response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    )
    assert response.usage is not None and response.usage.output_tokens == 2


async def test_previous_response_id_continues_the_conversation(fake_openai: openai.AsyncOpenAI) -> None:
    first = await fake_openai.responses.create(model=MODEL, input="My name is Ada.", max_output_tokens=8)
    second = await fake_openai.responses.create(
        model=MODEL, input="What is my name?", previous_response_id=first.id, max_output_tokens=8
    )
    alone = await fake_openai.responses.create(model=MODEL, input="What is my name?", max_output_tokens=8)
    assert second.previous_response_id == first.id
    assert second.usage is not None and alone.usage is not None and first.usage is not None
    # The earlier turn (its input and its answer) is in the prompt.
    assert second.usage.input_tokens > alone.usage.input_tokens + first.usage.output_tokens
    with pytest.raises(openai.NotFoundError):
        await fake_openai.responses.create(model=MODEL, input="x", previous_response_id="resp_nope")


async def test_delete_and_store_false(fake_openai: openai.AsyncOpenAI) -> None:
    kept = await fake_openai.responses.create(model=MODEL, input="Hi", max_output_tokens=4)
    # This SDK's delete returns None; others return a deletion object.
    deleted = await fake_openai.responses.delete(kept.id)  # type: ignore[func-returns-value]
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        await fake_openai.responses.retrieve(kept.id)
    unstored = await fake_openai.responses.create(model=MODEL, input="Hi", max_output_tokens=4, store=False)
    assert unstored.store is False  # type: ignore[attr-defined]  # a field this SDK's Response lacks
    with pytest.raises(openai.NotFoundError):
        await fake_openai.responses.retrieve(unstored.id)


async def test_parse_returns_a_valid_object(fake_openai: openai.AsyncOpenAI) -> None:
    parsed = await fake_openai.responses.parse(
        model=MODEL, input="Is the sky blue?", text_format=Verdict, max_output_tokens=200
    )
    assert isinstance(parsed.output_parsed, Verdict)
    assert parsed.text.format.type == "json_schema"  # type: ignore[union-attr]


async def test_a_forced_function_call_is_a_function_call_item(fake_openai: openai.AsyncOpenAI) -> None:
    response = await fake_openai.responses.create(
        model=MODEL,
        input="Weather in Paris?",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=100,
    )
    [call] = response.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert set(json.loads(call.arguments)) == {"city"} and call.call_id
    answered = await fake_openai.responses.create(
        model=MODEL,
        previous_response_id=response.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24 C"}],
        max_output_tokens=8,
    )
    assert answered.output[0].type == "message"


async def test_streaming_sends_typed_events_in_sequence(fake_openai: openai.AsyncOpenAI) -> None:
    events = [
        event
        async for event in await fake_openai.responses.create(
            model=MODEL, input="Hi", max_output_tokens=6, stream=True
        )
    ]
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed" if events[-1].response.status == "completed" else "response.incomplete",  # type: ignore[union-attr]
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert deltas and deltas == final.output_text
    assert (await fake_openai.responses.retrieve(final.id)).output_text == deltas


async def test_the_sdk_stream_helper_with_a_forced_tool(fake_openai: openai.AsyncOpenAI) -> None:
    async with fake_openai.responses.stream(
        model=MODEL,
        input="Weather in Oslo?",
        tools=[WEATHER],
        tool_choice="required",
        max_output_tokens=100,
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert final.output[0].type == "function_call"


async def test_a_wrapper_runs_as_a_prompt_with_its_version_and_fingerprint(
    fake_http: httpx.AsyncClient,
) -> None:
    body = {"prompt": {"id": "sentiment", "version": "1", "variables": {"text": "I love it"}}}
    answer = (await fake_http.post("/v1/responses", json=body)).json()
    assert answer["status"] == "completed"
    output = json.loads(answer["output"][0]["content"][0]["text"])
    assert output["label"] in ("positive", "negative", "neutral")
    wrapper = answer["wrapper"]
    assert (wrapper["name"], wrapper["output"]) == ("sentiment", output)
    assert wrapper["version"].startswith("1.") and wrapper["fingerprint"].startswith("sha256:")
    assert answer["model"] == f"wrapper:sentiment@{wrapper['version']}"
    invalid = await fake_http.post(
        "/v1/responses", json={"prompt": {"id": "sentiment", "variables": {"txt": "x"}}}
    )
    assert invalid.status_code == 422 and invalid.json()["error"]["param"] == "prompt.variables.text"
    unknown = await fake_http.post("/v1/responses", json={"prompt": {"id": "no-such", "variables": {}}})
    assert unknown.status_code == 404


async def test_a_wrapper_model_works_as_on_chat(fake_openai: openai.AsyncOpenAI) -> None:
    response = await fake_openai.responses.create(model="wrapper:sentiment", input="What a great day")
    assert json.loads(response.output_text)["label"] in ("positive", "negative", "neutral")
    assert response.model.startswith("wrapper:sentiment@")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": MODEL, "input": "x", "tools": [{"type": "web_search"}]}, "tools.0.type"),
        (
            {
                "model": MODEL,
                "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}],
            },
            "input.0.content.0.type",
        ),
        ({"model": MODEL, "input": [{"type": "reasoning"}]}, "input.0.type"),
        ({"model": MODEL, "input": []}, "input"),
        ({"model": MODEL, "input": "x", "background": True}, "background"),
        ({"model": MODEL, "input": "x", "metadata": {"k": "\ud800"}}, "metadata.k"),
        ({"model": MODEL, "input": [{"role": "user", "content": "x", "id": "\ud800"}]}, "input.0.id"),
        ({"model": MODEL, "input": "x", "conversation": "conv_1"}, "conversation"),
        ({"input": "x"}, "model"),
        ({"model": MODEL, "input": "x", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        (
            {"model": MODEL, "input": "x", "text": {"format": {"type": "json_schema", "name": "a"}}},
            "text.format.schema",
        ),
    ],
)
async def test_what_is_not_served_is_a_400_naming_the_field(
    fake_http: httpx.AsyncClient, body: dict[str, object], param: str
) -> None:
    raw = json.dumps(body)  # ASCII JSON: a lone surrogate travels as its escape
    response = await fake_http.post(
        "/v1/responses", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
