"""Metrics, request ids and structured logs on the real server."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.conftest import RunningServer

pytestmark = pytest.mark.engine

SECRET_TEXT = "zebra-marmalade-7731 is a wonderful product"


def _samples(text: str, name: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, value = line.rsplit(" ", 1)
            found[key] = float(value)
    return found


def test_metrics_count_requests_by_route_wrapper_and_status(http: httpx.Client) -> None:
    assert (
        http.post("/v1/wrappers/sentiment/invoke", json={"input": {"text": SECRET_TEXT}}).status_code == 200
    )
    assert http.post("/v1/wrappers/no-such-wrapper-123/invoke", json={"input": {}}).status_code == 404
    text = http.get("/metrics").text
    requests = _samples(text, "wrapserve_requests_total")
    ok = [k for k in requests if 'route="/v1/wrappers/{name}/invoke"' in k and 'wrapper="sentiment"' in k]
    assert ok and any('status="200"' in k for k in ok)
    assert not any("no-such-wrapper-123" in k for k in requests)  # labels only hold registered names
    assert any('status="404"' in k and 'wrapper=""' in k for k in requests)
    assert _samples(text, "wrapserve_request_duration_seconds_count")
    assert sum(_samples(text, "wrapserve_prompt_tokens_total").values()) > 0
    assert sum(_samples(text, "wrapserve_completion_tokens_total").values()) > 0
    assert sum(_samples(text, "wrapserve_grammar_cache_hits_total").values()) >= 1
    assert _samples(text, "wrapserve_grammar_compile_seconds_count")
    for gauge in (
        "wrapserve_engine_queue_depth",
        "wrapserve_admitted_requests",
        "wrapserve_grammar_cache_entries",
    ):
        assert _samples(text, gauge), gauge
    usage = _samples(text, "wrapserve_engine_kv_cache_usage")
    assert usage and all(0.0 <= v <= 1.0 for v in usage.values())


def test_unmatched_paths_share_one_label(http: httpx.Client) -> None:
    for i in range(3):
        http.get(f"/random/path/{i}")
    requests = _samples(http.get("/metrics").text, "wrapserve_requests_total")
    assert not any("/random/path" in k for k in requests)
    assert any('route="unmatched"' in k for k in requests)


def test_request_id_is_echoed_or_generated(http: httpx.Client) -> None:
    assert http.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = http.get("/health", headers={"X-Request-ID": "bad id\twith spaces" * 10}).headers[
        "x-request-id"
    ]
    assert generated.startswith("req_") and len(generated) < 40


def test_logs_are_json_with_request_ids_and_no_prompt_text(server: RunningServer, http: httpx.Client) -> None:
    http.post(
        "/v1/wrappers/sentiment/invoke",
        json={"input": {"text": SECRET_TEXT}},
        headers={"X-Request-ID": "log-check-1"},
    )
    mine = _access_entries(server, "log-check-1")
    assert mine and mine[0]["route"] == "/v1/wrappers/{name}/invoke" and mine[0]["status"] == 200
    assert {"ts", "level", "method", "latency_ms"} <= set(mine[0])
    assert SECRET_TEXT not in server.log()


def _access_entries(server: RunningServer, request_id: str) -> list[dict[str, object]]:
    """The access-log entries for one request. The line is written once the response has
    been sent, so it can land a moment after the client has its answer: wait for it."""
    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in server.log().splitlines() if line.startswith("{")]
        access = [json.loads(line) for line in lines if '"wrapserve.access"' in line]
        mine = [entry for entry in access if entry.get("request_id") == request_id]
        if mine or time.monotonic() > deadline:
            return mine
        time.sleep(0.1)
