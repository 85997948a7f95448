"""Tools: forced calls are grammar-constrained to the function's parameter schema."""

from __future__ import annotations

import json
from typing import Any, Literal

import jsonschema
import openai
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam
from pydantic import BaseModel, Field

from tests.openai.conftest import MODEL


class Weather(BaseModel):
    city: str = Field(max_length=30)
    unit: Literal["celsius", "fahrenheit"]


TIME_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The current time in a timezone.",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string", "maxLength": 30}},
            "required": ["timezone"],
            "additionalProperties": False,
        },
    },
}
WEATHER_TOOL = openai.pydantic_function_tool(Weather, name="get_weather", description="Weather in a city.")
QUESTION: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is the weather in Oslo?"}]


def _arguments(call: Any, tool: Any) -> Any:
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, tool["function"]["parameters"])
    return arguments


def test_named_function_is_called_with_valid_arguments(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        tools=[TIME_TOOL, WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0,
        max_tokens=80,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    Weather.model_validate(_arguments(call, WEATHER_TOOL))


def test_required_calls_one_of_the_functions(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        tools=[TIME_TOOL, WEATHER_TOOL],
        tool_choice="required",
        temperature=0,
        max_tokens=80,
    )
    [call] = completion.choices[0].message.tool_calls or []
    assert call.type == "function"
    tool = {"get_time": TIME_TOOL, "get_weather": WEATHER_TOOL}[call.function.name]
    _arguments(call, tool)


def test_parse_with_strict_pydantic_tool(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=MODEL,
        messages=QUESTION,
        tools=[WEATHER_TOOL],
        tool_choice="required",
        temperature=0,
        max_tokens=80,
    )
    [call] = completion.choices[0].message.tool_calls or []
    assert isinstance(call.function.parsed_arguments, Weather)


def test_forced_call_streams_whole(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0,
        max_tokens=80,
        stream=True,
    )
    chunks = [chunk for chunk in stream if chunk.choices]
    calls = [call for chunk in chunks for call in chunk.choices[0].delta.tool_calls or []]
    assert [call.function.name for call in calls] == ["get_weather"]  # type: ignore[union-attr]
    Weather.model_validate_json(calls[0].function.arguments)  # type: ignore[union-attr,arg-type]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_choice_none_answers_in_text(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        tools=[WEATHER_TOOL],
        tool_choice="none",
        temperature=0,
        max_tokens=10,
    )
    choice = completion.choices[0]
    assert choice.message.tool_calls is None and isinstance(choice.message.content, str)


def test_tool_results_in_history_are_accepted(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[
            *QUESTION,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo","unit":"celsius"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "4 degrees, rain"},
        ],
        tools=[WEATHER_TOOL],
        temperature=0,
        max_tokens=20,
    )
    assert completion.choices[0].finish_reason in {"stop", "length", "tool_calls"}
