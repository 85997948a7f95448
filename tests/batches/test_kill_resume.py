"""THE durability test: SIGKILL the server in the middle of a batch, start it again, and
every custom_id ends with exactly one result line: none lost, none duplicated, and the
results written before the kill are kept, not run again."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

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
from tests.conftest import free_port, start_server, stop_server, wait_ready

pytestmark = pytest.mark.engine

LINES = 60
# Few requests in flight, so the kill lands mid-batch; a generous grammar-compile timeout
# because this machine is shared and slow under load.
ENV = {
    "WRAPSERVE_LIMITS__MAX_BATCH_IN_FLIGHT": "6",
    "VLLM_REGEX_COMPILATION_TIMEOUT_S": "300",
    "WRAPSERVE_GPU_MEMORY_UTILIZATION": "0.05",  # ~1 GiB of KV cache is plenty for this test
}


def _done_results(db: Path, batch_id: str) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT custom_id, result_id FROM batch_items WHERE batch_id = ? AND state = 'done'", (batch_id,)
        ).fetchall()
    return dict(rows)


def test_a_killed_server_resumes_the_batch_and_loses_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = home / "wrapserve.sqlite3"
    first = start_server(home, free_port(), **ENV)
    try:
        wait_ready(first)
        sdk = openai.OpenAI(base_url=f"{first.base_url}/v1", api_key="unused", max_retries=0)
        lines = wrapper_lines(LINES, prefix="kr")
        uploaded = sdk.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
        batch = sdk.batches.create(input_file_id=uploaded.id, endpoint=SENTIMENT, completion_window="24h")  # type: ignore[arg-type]
        # Watch the store itself, not the HTTP API, and kill the moment the first result is
        # committed: a status call answered by a busy server can come back after the whole
        # batch is done (seen on CI), which leaves nothing to resume.
        deadline = time.monotonic() + 600
        while not _done_results(db, batch.id) and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        os.killpg(first.process.pid, signal.SIGKILL)  # the whole group: server and vLLM workers
        first.process.wait()

    before = _done_results(db, batch.id)  # exactly what was committed when the kill landed
    assert 0 < len(before) < LINES, f"wanted to kill mid-batch, saw {len(before)} of {LINES} done"

    second = start_server(home, free_port(), **ENV)
    try:
        wait_ready(second)
        sdk = openai.OpenAI(base_url=f"{second.base_url}/v1", api_key="unused", max_retries=0)
        done = wait_for(sdk, batch.id, timeout_s=1800)
        assert done.status == "completed", done
        assert done.request_counts.total == LINES
        assert done.request_counts.completed + done.request_counts.failed == LINES
        results = result_lines(sdk, done.output_file_id) + result_lines(sdk, done.error_file_id)
        assert len(results) == LINES
        assert_once_each(results, {line["custom_id"] for line in lines})
        for line in results:
            assert_valid_sentiment(line)
            if line["custom_id"] in before:  # finished before the kill: kept, not re-run
                assert line["id"] == before[line["custom_id"]]
        assert "resuming 1 unfinished batch job(s)" in second.log()
    finally:
        stop_server(second)
