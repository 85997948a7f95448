"""Bad input: the SDK's typed exceptions, with OpenAI's error body and the field named."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import RunningServer
from tests.openai.conftest import MODEL

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 1000}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 10_000_000}, "max_completion_tokens"),
        ({"temperature": 5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"stop": [str(i) for i in range(50)]}, "stop"),
        ({"top_logprobs": 50, "logprobs": True}, "top_logprobs"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"$dynamicRef": "#meta"}},
                }
            },
            "response_format.json_schema.schema",
        ),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"chat_template": "{{ messages }}"}, "chat_template"),
    ],
)
def test_out_of_bounds_is_400_naming_the_field(
    client: openai.OpenAI, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=HELLO, extra_body=extra)
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert "Traceback" not in error["message"]


def test_image_parts_are_refused_with_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
                }
            ],
        )
    assert caught.value.body["param"] == "messages.0.content.0"  # type: ignore[index]


def test_prompt_longer_than_the_context_is_400_with_both_numbers(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "word " * 9000}], max_tokens=10
        )
    assert caught.value.code == "context_length_exceeded"
    assert "10 " in caught.value.message or "max_tokens is 10" in caught.value.message


@pytest.mark.parametrize("model", ["gpt-4o", "wrapper:no-such-wrapper", "wrapper:sentiment@9"])
def test_unknown_model_is_404(client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model=model, messages=HELLO)
    assert caught.value.code == "model_not_found"
    assert caught.value.body["param"] == "model"  # type: ignore[index]


def test_unknown_model_on_completions_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="davinci-002", prompt="Hi")


@pytest.mark.parametrize(
    "body",
    [
        {"model": MODEL},  # no messages
        {"model": MODEL, "messages": "hello"},
        {"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]},
        {"model": MODEL, "messages": HELLO, "n": "many"},
    ],
)
def test_malformed_body_is_422(client: openai.OpenAI, body: dict[str, Any]) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.post("/chat/completions", cast_to=object, body=body)
    assert caught.value.body["type"] == "invalid_request_error"  # type: ignore[index]


def test_not_json_is_422_in_openai_shape(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 422
    assert set(response.json()["error"]) >= {"message", "type", "param", "code"}
