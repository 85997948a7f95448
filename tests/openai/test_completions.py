"""The legacy completions endpoint through the SDK."""

from __future__ import annotations

import json

import openai
import pytest
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming

from tests.openai.conftest import MODEL


def test_completion_in_openai_shape(client: openai.OpenAI) -> None:
    completion = client.completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=5, temperature=0
    )
    assert completion.object == "text_completion"
    assert completion.id.startswith("cmpl-")
    [choice] = completion.choices
    assert choice.index == 0 and choice.text
    assert completion.usage is not None and 0 < completion.usage.completion_tokens <= 5


def test_several_prompts_and_n(client: openai.OpenAI) -> None:
    completion = client.completions.create(
        model=MODEL, prompt=["One, two,", "Red, green,"], n=2, max_tokens=3, temperature=0.8, seed=1
    )
    assert sorted(choice.index for choice in completion.choices) == [0, 1, 2, 3]


def test_ignore_eos_generates_the_whole_budget(client: openai.OpenAI) -> None:
    """vLLM's ``ignore_eos`` extension: the same greedy request that stops by itself runs to
    max_tokens when the end-of-text token is ignored."""
    request: CompletionCreateParamsNonStreaming = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Answer with one word: is water wet?"}],
        "max_tokens": 40,
        "temperature": 0,
    }
    stopped = client.chat.completions.create(**request)
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.usage is not None and stopped.usage.completion_tokens < 40
    full = client.chat.completions.create(**request, extra_body={"ignore_eos": True})
    assert full.choices[0].finish_reason == "length"
    assert full.usage is not None and full.usage.completion_tokens == 40


def test_legacy_logprobs(client: openai.OpenAI) -> None:
    completion = client.completions.create(
        model=MODEL, prompt="Hello", max_tokens=4, logprobs=2, temperature=0
    )
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens and logprobs.token_logprobs and logprobs.top_logprobs
    assert "".join(logprobs.tokens) == completion.choices[0].text
    assert all(len(top) <= 2 for top in logprobs.top_logprobs)
    assert logprobs.text_offset is not None and logprobs.text_offset == sorted(logprobs.text_offset)


def test_streamed_completion_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.completions.create(
            model=MODEL,
            prompt="Once upon a time",
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(chunk.choices[0].text for chunk in chunks if chunk.choices)
    whole = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8, temperature=0)
    assert text == whole.choices[0].text
    usage, expected = chunks[-1].usage, whole.usage
    assert usage is not None and expected is not None
    assert usage.completion_tokens == expected.completion_tokens


def test_response_format_on_completions(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    completion = client.completions.create(
        model=MODEL,
        prompt="Answer in JSON:",
        max_tokens=20,
        temperature=0,
        extra_body={
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
        },
    )
    assert isinstance(json.loads(completion.choices[0].text)["ok"], bool)


def test_bad_completion_requests_are_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=MODEL, prompt="x", logprobs=9)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=MODEL, prompt="x", echo=True)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=MODEL, prompt="", max_tokens=3)
