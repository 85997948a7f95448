"""Native and OpenAI routes on the fake engine: status codes, shapes, errors, streaming."""

from __future__ import annotations

import gc
import json
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel

from server.app import YOUNG_GC_THRESHOLDS
from tests.http.conftest import MODEL


async def test_health_and_models_list_the_model_and_wrappers(fake_http: httpx.AsyncClient) -> None:
    assert (await fake_http.get("/health")).status_code == 200
    assert gc.get_threshold() == YOUNG_GC_THRESHOLDS  # set once start-up's heap is frozen
    ids = {model["id"] for model in (await fake_http.get("/v1/models")).json()["data"]}
    assert MODEL in ids and "wrapper:sentiment" in ids


async def test_a_scored_wrapper_answers_one_of_its_labels(fake_http: httpx.AsyncClient) -> None:
    answer = (
        await fake_http.post("/v1/wrappers/sentiment/invoke", json={"input": {"text": "I love it"}})
    ).json()
    assert answer["output"]["label"] in {"positive", "negative", "neutral"}
    assert set(answer["scores"]) == {"positive", "negative", "neutral"}
    assert abs(sum(answer["scores"].values()) - 1) < 1e-3
    assert answer["wrapper"] == "sentiment" and answer["fingerprint"].startswith("sha256:")


async def test_a_decoded_wrapper_answer_validates_against_its_output_schema(
    fake_http: httpx.AsyncClient,
) -> None:
    described = (await fake_http.get("/v1/wrappers/contact")).json()
    answer = await fake_http.post(
        "/v1/wrappers/contact/invoke", json={"input": {"text": "Ada Lovelace, ada@example.com"}}
    )
    assert answer.status_code == 200, answer.text
    jsonschema.validate(answer.json()["output"], described["output_schema"])


async def test_bad_wrapper_input_is_a_422_naming_the_field(fake_http: httpx.AsyncClient) -> None:
    answer = await fake_http.post("/v1/wrappers/sentiment/invoke", json={"input": {"txt": "x"}})
    assert answer.status_code == 422
    assert answer.json()["error"]["param"] == "input.text"


@pytest.mark.parametrize(
    ("content", "content_type", "param"),
    [
        (b"", "application/json", "body"),
        (b'{"input": {"text": "x"', "application/json", "body"),
        (b'{"input": {"text": "x"}}', "text/plain", "body"),
        (b'{"input": {"text": "x"}, "verison": "1"}', "application/json", "verison"),
        (b'{"input": {"text": "x"}, "options": {"max_tokens": "many"}}', None, "options.max_tokens"),
        (b"[" * 30_000 + b"]" * 30_000, "application/json; charset=utf-8", "body"),
    ],
    ids=["empty", "malformed", "not-json", "unknown-field", "wrong-type", "deep"],
)
async def test_a_bad_invoke_body_is_a_422_as_on_every_route(
    fake_http: httpx.AsyncClient, content: bytes, content_type: str | None, param: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    answer = await fake_http.post("/v1/wrappers/sentiment/invoke", content=content, headers=headers)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_value" and error["param"] == param and error["message"]


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/vnd.api+json", None]
)
async def test_an_invoke_body_with_a_json_media_type_or_none_is_read_as_json(
    fake_http: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    answer = await fake_http.post(
        "/v1/wrappers/sentiment/invoke", content=b'{"input": {"text": "fine"}}', headers=headers
    )
    assert answer.status_code == 200, answer.text


async def test_every_reference_in_the_openapi_document_resolves(fake_http: httpx.AsyncClient) -> None:
    document = (await fake_http.get("/openapi.json")).json()
    invoke = document["paths"]["/v1/wrappers/{name}/invoke"]["post"]
    assert invoke["requestBody"]["content"]["application/json"]["schema"]["properties"]["input"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [ref for value in node.values() for ref in refs(value)]
        return [ref for value in node for ref in refs(value)] if isinstance(node, list) else []

    components = document["components"]["schemas"]
    unresolved = {
        ref for ref in refs(document) if ref.removeprefix("#/components/schemas/") not in components
    }
    assert not unresolved


async def test_a_wrapper_cut_by_max_tokens_is_a_502_with_the_raw_output(fake_http: httpx.AsyncClient) -> None:
    answer = await fake_http.post(
        "/v1/wrappers/contact/invoke",
        json={"input": {"text": "Ada"}, "options": {"max_tokens": 2}},
    )
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "output_truncated"


class City(BaseModel):
    name: str
    population: int


async def test_chat_parse_returns_a_valid_object(fake_openai: openai.AsyncOpenAI) -> None:
    completion = await fake_openai.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "A city?"}], response_format=City, max_tokens=200
    )
    assert isinstance(completion.choices[0].message.parsed, City)
    assert completion.usage is not None and completion.usage.prompt_tokens > 0


async def test_chat_max_tokens_finishes_with_length(fake_openai: openai.AsyncOpenAI) -> None:
    completion = await fake_openai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2, n=2
    )
    assert [c.finish_reason for c in completion.choices] == ["length", "length"]
    assert completion.usage is not None and completion.usage.completion_tokens == 4


async def test_chat_stream_sends_role_text_finish_and_usage(fake_openai: openai.AsyncOpenAI) -> None:
    stream = await fake_openai.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=50,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(text)
    assert len({chunk.id for chunk in chunks}) == 1


async def test_wrapper_as_a_chat_model_answers_its_output_json(fake_openai: openai.AsyncOpenAI) -> None:
    completion = await fake_openai.chat.completions.create(
        model="wrapper:sentiment", messages=[{"role": "user", "content": "Great!"}]
    )
    assert json.loads(completion.choices[0].message.content or "")["label"] in {
        "positive",
        "negative",
        "neutral",
    }
    assert completion.model.startswith("wrapper:sentiment@")


async def test_unknown_model_and_bad_values_are_typed_errors(fake_openai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        await fake_openai.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as caught:
        await fake_openai.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], temperature=5
        )
    assert "temperature" in str(caught.value)


async def test_completions_number_choices_per_prompt(fake_openai: openai.AsyncOpenAI) -> None:
    completion = await fake_openai.completions.create(model=MODEL, prompt=["a", "b"], n=2, max_tokens=5)
    assert sorted(c.index for c in completion.choices) == [0, 1, 2, 3]


async def test_engine_queue_is_empty_after_the_calls(fake_http: httpx.AsyncClient) -> None:
    metrics = (await fake_http.get("/metrics")).text
    depth = next(line for line in metrics.splitlines() if line.startswith("wrapserve_engine_queue_depth"))
    assert depth.split()[-1] in {"0", "0.0"}


async def test_a_wrapper_chat_call_is_labelled_with_its_wrapper(
    fake_http: httpx.AsyncClient, fake_openai: openai.AsyncOpenAI
) -> None:
    def labelled(text: str) -> float:
        return sum(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("wrapserve_requests_total{")
            and 'route="/v1/chat/completions"' in line
            and 'wrapper="sentiment"' in line
        )

    before = labelled((await fake_http.get("/metrics")).text)
    await fake_openai.chat.completions.create(
        model="wrapper:sentiment", messages=[{"role": "user", "content": "ok"}]
    )
    assert labelled((await fake_http.get("/metrics")).text) == before + 1


async def test_one_model_by_id_wrappers_included(fake_openai: openai.AsyncOpenAI) -> None:
    model = await fake_openai.models.retrieve(MODEL)
    assert model.id == MODEL
    wrapper = await fake_openai.models.retrieve("wrapper:sentiment@1.0.0")
    assert wrapper.id == "wrapper:sentiment@1.0.0" and (wrapper.model_extra or {})["version"] == "1.0.0"
    with pytest.raises(openai.NotFoundError):
        await fake_openai.models.retrieve("no-such-model")


async def test_a_file_can_be_deleted(fake_openai: openai.AsyncOpenAI) -> None:
    line = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/wrappers/sentiment/invoke",
        "body": {"input": {"text": "x"}},
    }
    upload = await fake_openai.files.create(file=("in.jsonl", json.dumps(line).encode()), purpose="batch")
    deleted = await fake_openai.files.delete(upload.id)
    assert deleted.deleted and deleted.id == upload.id
    with pytest.raises(openai.NotFoundError):
        await fake_openai.files.retrieve(upload.id)


CITY_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
FORCED = {"type": "function", "function": {"name": "get_weather"}}
CUT = len('{"name":"get_weather","arguments":') + 3  # tokens are characters on the fake engine


async def test_a_forced_call_cut_off_is_a_partial_tool_call(fake_openai: openai.AsyncOpenAI) -> None:
    call_cut_off: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [CITY_TOOL],
        "tool_choice": FORCED,
        "max_tokens": CUT,
    }
    completion = await fake_openai.chat.completions.create(**call_cut_off)
    choice = completion.choices[0]
    assert choice.finish_reason == "length" and choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.function.name == "get_weather" and call.function.arguments.startswith("{")
    stream = await fake_openai.chat.completions.create(**call_cut_off, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices[0].finish_reason == "length"
    assert any(c.choices and c.choices[0].delta.tool_calls for c in chunks)


async def test_stream_deltas_carry_no_nulls_and_usage_has_cached_tokens(fake_http: httpx.AsyncClient) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with fake_http.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = [line async for line in response.aiter_lines() if line.startswith("data: {")]
    chunks = [json.loads(line[len("data: ") :]) for line in lines]
    deltas = [choice["delta"] for chunk in chunks for choice in chunk["choices"]]
    assert deltas and all(None not in delta.values() for delta in deltas), deltas
    assert "cached_tokens" in chunks[-1]["usage"]["prompt_tokens_details"]
