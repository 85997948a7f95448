"""Server-sent events through the SDK: chunks, one id, usage, [DONE], client going away."""

from __future__ import annotations

import json
import time

import httpx
import openai
from pydantic import BaseModel, Field

from tests.conftest import RunningServer
from tests.openai.conftest import MODEL


class Colour(BaseModel):
    name: str = Field(max_length=20)


def test_stream_with_usage_keeps_one_id(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Write one short sentence about the sea."}],
        stream=True,
        stream_options={"include_usage": True},
        temperature=0,
        max_tokens=20,
    )
    chunks = list(stream)
    assert len({chunk.id for chunk in chunks}) == 1
    assert len({chunk.created for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert finishes[-1] in {"stop", "length"} and all(f is None for f in finishes[:-1])
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert (
        usage.completion_tokens <= 20 and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    )
    assert all(chunk.usage is None for chunk in chunks[:-1])
    # The same request, not streamed, gives the same text (greedy decoding).
    whole = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Write one short sentence about the sea."}],
        temperature=0,
        max_tokens=20,
    )
    assert whole.choices[0].message.content == text
    assert whole.usage is not None and whole.usage.completion_tokens == usage.completion_tokens


def test_streamed_structured_output_parses(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model=MODEL,
        messages=[{"role": "user", "content": "Name a colour."}],
        response_format=Colour,
        temperature=0,
        max_tokens=40,
    ) as stream:
        final = stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, Colour)


def test_raw_frames_end_with_done(server: RunningServer) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "max_tokens": 5,
        "n": 2,
    }
    with httpx.stream("POST", f"{server.base_url}/v1/chat/completions", json=body, timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[len("data: ") :]) for line in lines[:-1]]
    finished = {c["choices"][0]["index"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]}
    assert finished == {0, 1}


def test_client_going_away_ends_the_stream_and_aborts(server: RunningServer) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell me a very long story about a dragon."}],
        "stream": True,
        "max_tokens": 2000,
        "ignore_eos": True,  # a story that ended early would leave nothing to abort
        "temperature": 0,
    }
    with httpx.stream("POST", f"{server.base_url}/v1/chat/completions", json=body, timeout=120) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line)
        stream_id = json.loads(first[len("data: ") :])["id"]
    # Closed after one chunk: the server must notice, close the stream and abort.
    marker = f"stream {stream_id}: the client went away; engine request aborted"
    deadline = time.monotonic() + 120
    while marker not in server.log() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert marker in server.log()
    # And the server still answers.
    check = httpx.get(f"{server.base_url}/health", timeout=30)
    assert check.status_code == 200
