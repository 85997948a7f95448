"""Malformed input that once answered 500 (issue: hardening): each is a 4xx naming the field,
and the engine is left with nothing running. On the fake engine: these are checks above it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.http.conftest import MODEL

SURROGATE = "\ud800"


def _raw(payload: dict[str, Any]) -> bytes:
    # json.dumps writes a lone surrogate as the escape "\ud800", exactly what a client sends.
    return json.dumps(payload).encode()


CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    "chat seed 2**64": (
        "/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "seed": 2**64},
        "seed",
    ),
    "chat seed below int64": (
        "/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "seed": -(2**63) - 1},
        "seed",
    ),
    "completions seed 10**30": ("/v1/completions", {"model": MODEL, "prompt": "hi", "seed": 10**30}, "seed"),
    "wrapper options.seed": (
        "/v1/wrappers/contact/invoke",
        {"input": {"text": "Ada"}, "options": {"seed": 2**64}},
        "options.seed",
    ),
    "lone surrogate in chat": (
        "/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": f"a{SURROGATE}b"}]},
        "messages.0.content",
    ),
    "lone surrogate in completions": ("/v1/completions", {"model": MODEL, "prompt": SURROGATE}, "prompt"),
    "lone surrogate in a wrapper input": (
        "/v1/wrappers/contact/invoke",
        {"input": {"text": SURROGATE}},
        "input.text",
    ),
    "lone surrogate in a schema key": (
        "/v1/chat/completions",
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "object", "properties": {SURROGATE: {}}}},
            },
        },
        "response_format.json_schema.schema",
    ),
    "token id beyond the vocabulary": ("/v1/completions", {"model": MODEL, "prompt": [65, 10**9]}, "prompt"),
    "negative token id": ("/v1/completions", {"model": MODEL, "prompt": [[65], [-1]]}, "prompt"),
    "ref with an $id inside properties": (
        "/v1/chat/completions",
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "x",
                    "schema": {"properties": {"a": {"$id": "http://x/sub.json", "$ref": "#/$defs/s"}}},
                },
            },
        },
        "response_format.json_schema.schema",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
async def test_malformed_input_is_a_4xx_naming_the_field(fake_http: httpx.AsyncClient, case: str) -> None:
    path, payload, param = CASES[case]
    response = await fake_http.post(path, content=_raw(payload), headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["param"] == param
    engine = fake_http._transport.app.state.wrapserve.engine  # type: ignore[attr-defined]
    assert engine.queue_depth() == 0


async def test_deeply_nested_tool_call_arguments_are_text_not_a_crash(fake_http: httpx.AsyncClient) -> None:
    deep = "[" * 30_000 + "]" * 30_000
    messages = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": deep}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    response = await fake_http.post(
        "/v1/chat/completions", json={"model": MODEL, "messages": messages, "max_tokens": 3}
    )
    assert response.status_code in (200, 400), response.text


async def test_too_many_messages_is_a_400_naming_the_limit(fake_http: httpx.AsyncClient) -> None:
    messages = [{"role": "user", "content": ""}] * 5_000
    response = await fake_http.post("/v1/chat/completions", json={"model": MODEL, "messages": messages})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"
    assert "MAX_MESSAGES" in response.json()["error"]["message"]


async def test_a_trailing_slash_is_a_404_not_a_redirect_built_from_the_host_header(
    fake_http: httpx.AsyncClient,
) -> None:
    response = await fake_http.post(
        "/v1/chat/completions/", json={"model": MODEL, "messages": []}, headers={"Host": "evil.example"}
    )
    assert response.status_code == 404 and "location" not in response.headers


async def test_chat_template_is_refused_on_wrapper_models_too(fake_http: httpx.AsyncClient) -> None:
    response = await fake_http.post(
        "/v1/chat/completions",
        json={
            "model": "wrapper:sentiment",
            "messages": [{"role": "user", "content": "great"}],
            "chat_template": "{{ messages }}",
        },
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "chat_template"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/wrappers/sentiment/invoke"])
async def test_a_chunked_body_over_the_limit_is_a_413_as_documented(
    fake_http: httpx.AsyncClient, path: str
) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the body arrives chunked
        for _ in range(9):
            yield b" " * (1024 * 1024)

    response = await fake_http.post(path, content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "request_too_large"
    assert (await fake_http.get("/health")).status_code == 200
