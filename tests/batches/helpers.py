"""Shared helpers for the batch tests: build input files, wait for a batch, read results."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import openai

TERMINAL = {"completed", "failed", "cancelled", "expired"}
SENTIMENT = "/v1/wrappers/sentiment/invoke"
TEXTS = [
    "I love this phone, the battery lasts for days!",
    "Terrible service. I waited two hours and nobody helped me.",
    "The meeting is scheduled for 3pm on Tuesday.",
    "What a wonderful little cafe, we will be back.",
    "The parcel arrived broken and support never answered.",
]


def wrapper_lines(count: int, prefix: str = "req") -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"{prefix}-{i}",
            "method": "POST",
            "url": SENTIMENT,
            "body": {"input": {"text": f"{TEXTS[i % len(TEXTS)]} (#{i})"}},
        }
        for i in range(count)
    ]


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def wait_for(client: openai.OpenAI, batch_id: str, timeout_s: float = 900) -> Any:
    """Poll until the batch is in a terminal state (the deadline only guards against a hang)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in TERMINAL:
            return batch
        time.sleep(0.5)
    raise AssertionError(f"batch {batch_id} did not finish: {client.batches.retrieve(batch_id)}")


def result_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    text = client.files.content(file_id).text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_once_each(results: list[dict[str, Any]], expected_ids: set[str]) -> None:
    counts = Counter(line["custom_id"] for line in results)
    duplicated = {cid: n for cid, n in counts.items() if n > 1}
    assert not duplicated, f"duplicated results: {duplicated}"
    assert set(counts) == expected_ids, f"lost: {sorted(expected_ids - set(counts))[:10]}"


def assert_valid_sentiment(line: dict[str, Any]) -> None:
    assert line["error"] is None
    assert line["id"].startswith("batch_req_")
    response = line["response"]
    assert response["status_code"] == 200 and response["request_id"].startswith("req_")
    assert response["body"]["wrapper"] == "sentiment"
    assert response["body"]["output"]["label"] in {"positive", "negative", "neutral"}
