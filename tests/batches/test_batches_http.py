"""Batch jobs over HTTP with the official openai SDK, against the session's real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.batches.helpers import (
    SENTIMENT,
    assert_once_each,
    assert_valid_sentiment,
    jsonl,
    result_lines,
    wait_for,
    wrapper_lines,
)
from tests.conftest import RunningServer

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120) as sdk:
        yield sdk


def test_a_batch_runs_every_line_once_with_outputs_and_errors(client: openai.OpenAI) -> None:
    lines = wrapper_lines(12)
    lines.append(
        {"custom_id": "bad-input", "method": "POST", "url": SENTIMENT, "body": {"input": {"txt": "x"}}}
    )
    lines.append(
        {
            "custom_id": "other-wrapper",
            "method": "POST",
            "url": "/v1/wrappers/classify/invoke",
            "body": {"input": {"text": "Heavy rain tomorrow.", "labels": ["weather", "sports"]}},
        }
    )
    uploaded = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    assert uploaded.object == "file" and uploaded.purpose == "batch" and uploaded.bytes == len(jsonl(lines))
    assert client.files.retrieve(uploaded.id).filename == "in.jsonl"
    assert client.files.content(uploaded.id).content == jsonl(lines)

    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint=SENTIMENT,  # type: ignore[arg-type]  # a wrapper: not among the SDK's endpoints
        completion_window="24h",
        metadata={"purpose": "test"},
    )
    assert (
        batch.status in {"validating", "in_progress"}
        and batch.request_counts is not None
        and batch.request_counts.total == len(lines)
    )
    done = wait_for(client, batch.id)

    assert done.status == "completed", done
    assert done.request_counts.total == 14
    assert done.request_counts.completed == 13 and done.request_counts.failed == 1
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    assert done.metadata == {"purpose": "test"}
    outputs = result_lines(client, done.output_file_id)
    errors = result_lines(client, done.error_file_id)
    assert_once_each(outputs + errors, {line["custom_id"] for line in lines})
    for line in outputs:
        if line["custom_id"] == "other-wrapper":
            assert line["response"]["body"]["output"]["label"] in {"weather", "sports"}
        else:
            assert_valid_sentiment(line)
    assert [line["custom_id"] for line in outputs] == [f"req-{i}" for i in range(12)] + ["other-wrapper"]
    (error,) = errors
    assert error["custom_id"] == "bad-input" and error["response"]["status_code"] == 422
    assert error["error"]["code"] == "invalid_input" and "input.text" in error["error"]["message"]
    assert any(b.id == batch.id for b in client.batches.list(limit=100).data)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b'{"custom_id": "a", "method": "POST", "url": "/v1/wrappers/sentiment/invoke", "body": {}}\n{oops\n',
            "line 2: not valid JSON",
        ),
        (jsonl(wrapper_lines(2) + wrapper_lines(1)), "line 3: duplicate custom_id 'req-0'"),
        (
            jsonl([{**wrapper_lines(1)[0], "url": "/v1/embeddings"}]),
            "line 1: url '/v1/embeddings' is not a batch endpoint",
        ),
        (jsonl([{**wrapper_lines(1)[0], "method": "GET"}]), "line 1: method must be POST"),
        (jsonl([{"custom_id": "a", "method": "POST", "url": SENTIMENT}]), "line 1: missing field(s) body"),
        (jsonl([{**wrapper_lines(1)[0], "url": "/v1/wrappers/no-such/invoke"}]), "unknown wrapper 'no-such'"),
    ],
)
def test_a_bad_input_file_is_rejected_naming_the_line(
    client: openai.OpenAI, content: bytes, expected: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("bad.jsonl", content), purpose="batch")
    body = caught.value.body
    assert isinstance(body, dict) and expected in body["message"], body
    assert body["code"] == "invalid_batch_input"


def test_bad_batch_requests_are_clear_errors(client: openai.OpenAI) -> None:
    good = client.files.create(file=("in.jsonl", jsonl(wrapper_lines(1))), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="no file"):
        client.batches.create(input_file_id="file-missing", endpoint=SENTIMENT, completion_window="24h")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="does not match the batch endpoint"):
        client.batches.create(input_file_id=good.id, endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.BadRequestError, match="completion_window"):
        client.batches.create(input_file_id=good.id, endpoint=SENTIMENT, completion_window="1h")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("in.jsonl", jsonl(wrapper_lines(1))), purpose="fine-tune")
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_missing")
    with pytest.raises(openai.NotFoundError):
        client.files.content("file-missing")


def test_cancel_stops_the_batch_and_keeps_what_finished(client: openai.OpenAI) -> None:
    lines = wrapper_lines(300, prefix="cancel")
    uploaded = client.files.create(file=("many.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint=SENTIMENT, completion_window="24h")  # type: ignore[arg-type]
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in {"cancelling", "cancelled"}
    done = wait_for(client, batch.id)
    assert done.status == "cancelled" and done.cancelled_at and done.cancelling_at
    counts = done.request_counts
    assert counts.total == 300 and counts.completed + counts.failed < 300
    outputs = result_lines(client, done.output_file_id) + result_lines(client, done.error_file_id)
    assert len(outputs) == counts.completed + counts.failed
    assert len({line["custom_id"] for line in outputs}) == len(outputs)
    assert client.batches.cancel(batch.id).status == "cancelled"  # cancelling again changes nothing


def test_a_finished_batch_cannot_be_cancelled(client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("one.jsonl", jsonl(wrapper_lines(1, prefix="one"))), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint=SENTIMENT, completion_window="24h")  # type: ignore[arg-type]
    assert wait_for(client, batch.id).status == "completed"
    with pytest.raises(openai.ConflictError, match="cannot be cancelled"):
        client.batches.cancel(batch.id)


def test_a_chat_completions_batch(client: openai.OpenAI) -> None:
    lines: list[dict[str, Any]] = [
        {
            "custom_id": f"chat-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "smollm2-135m-instruct",
                "messages": [{"role": "user", "content": f"Say hello to person number {i}."}],
                "max_tokens": 8,
            },
        }
        for i in range(4)
    ]
    uploaded = client.files.create(file=("chat.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = wait_for(client, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 4, done
    outputs = result_lines(client, done.output_file_id)
    assert_once_each(outputs, {line["custom_id"] for line in lines})
    for line in outputs:
        body = line["response"]["body"]
        assert line["response"]["status_code"] == 200 and body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["role"] == "assistant"
        assert 0 < body["usage"]["completion_tokens"] <= 8
