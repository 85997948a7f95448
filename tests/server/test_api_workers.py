"""Two API workers on one engine core (``--api-workers 2``, vLLM's multi-API-server mechanism),
on the real engine: both answer, /metrics adds them up, a batch job runs once though each
worker has a runner on the store, SIGHUP reloads both, SIGTERM stops everything cleanly."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.batches.helpers import SENTIMENT, assert_once_each, jsonl, result_lines, wait_for, wrapper_lines
from tests.conftest import RunningServer, free_port, start_server, stop_server, wait_ready

pytestmark = pytest.mark.engine

CALLS = 24


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home = Path(tmp_path_factory.mktemp("api-workers"))
    server = start_server(home, free_port(), WRAPSERVE_API_WORKERS="2")
    try:
        wait_ready(server)
        yield server
    finally:
        stop_server(server)


def fresh_get(server: RunningServer, path: str) -> httpx.Response:
    with httpx.Client(base_url=server.base_url, timeout=60) as client:  # a new connection each time
        return client.get(path)


def test_both_workers_answer_and_metrics_add_them_up(workers: RunningServer) -> None:
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    while seen != {0, 1}:  # every worker ready, each on the shared socket
        assert time.monotonic() < deadline, f"workers seen ready: {seen}"
        health = fresh_get(workers, "/health")
        if health.status_code == 200:
            seen.add(health.json()["api_worker"])
    for i in range(CALLS):
        with httpx.Client(base_url=workers.base_url, timeout=60) as client:
            answer = client.post(SENTIMENT, json={"input": {"text": f"Great stuff #{i}"}})
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"]["label"] in {"positive", "negative", "neutral"}
    time.sleep(1.5)  # each worker publishes its live values every second
    metrics = fresh_get(workers, "/metrics").text
    invoked = [
        line
        for line in metrics.splitlines()
        if line.startswith("wrapserve_requests_total{") and 'route="/v1/wrappers/{name}/invoke"' in line
    ]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in invoked) == CALLS, invoked
    assert "wrapserve_ready 1.0" in metrics and "wrapserve_admitted_requests 0.0" in metrics
    # counters stay counters when added up; the KV cache reading is left out (never current)
    assert "# TYPE wrapserve_wrapper_answers_total counter" in metrics
    assert "wrapserve_engine_kv_cache_usage" not in metrics
    answers = [line for line in metrics.splitlines() if line.startswith("wrapserve_wrapper_answers_total{")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in answers) >= CALLS  # warm-up calls are not counted


def test_a_batch_runs_once_with_a_runner_in_each_worker(workers: RunningServer) -> None:
    client = openai.OpenAI(base_url=f"{workers.base_url}/v1", api_key="unused", max_retries=2)
    lines = wrapper_lines(16)
    upload = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=upload.id,
        endpoint=SENTIMENT,  # type: ignore[arg-type]  # the SDK's Literal lists OpenAI's endpoints only
        completion_window="24h",
    )
    finished = wait_for(client, batch.id, timeout_s=300)
    assert finished.status == "completed", finished
    assert_once_each(result_lines(client, finished.output_file_id), {line["custom_id"] for line in lines})


def test_sighup_reloads_every_worker_and_sigterm_stops_cleanly(workers: RunningServer) -> None:
    os.kill(workers.process.pid, signal.SIGHUP)  # the main process passes it on
    deadline = time.monotonic() + 30
    while workers.log().count("releases reloaded") < 2:
        assert time.monotonic() < deadline, workers.log_tail()
        time.sleep(0.2)
    assert workers.process.poll() is None
    os.kill(workers.process.pid, signal.SIGTERM)
    assert workers.process.wait(120) == 0, workers.log_tail()
    reloads = [json.loads(line) for line in workers.log().splitlines() if "releases reloaded" in line]
    assert len(reloads) == 2
