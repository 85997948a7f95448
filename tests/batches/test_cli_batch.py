"""`wrapserve batch run IN.jsonl OUT.jsonl`: a small file through its own in-process engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.batches.helpers import SENTIMENT, assert_once_each, assert_valid_sentiment, jsonl, wrapper_lines
from tests.conftest import REPO, server_env

pytestmark = pytest.mark.engine


def test_batch_run_writes_one_result_per_custom_id(tmp_path: Path) -> None:
    lines = wrapper_lines(6, prefix="cli")
    lines.append(
        {"custom_id": "cli-bad", "method": "POST", "url": SENTIMENT, "body": {"input": {"text": ""}}}
    )
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(jsonl(lines))
    env = server_env(
        tmp_path / "home", VLLM_REGEX_COMPILATION_TIMEOUT_S="300", WRAPSERVE_GPU_MEMORY_UTILIZATION="0.05"
    )
    run = subprocess.run(
        [sys.executable, "-m", "server.cli", "batch", "run", str(source), str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "6 succeeded, 1 failed; 7 lines in" in run.stderr
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert_once_each(results, {line["custom_id"] for line in lines})
    for result in results:
        if result["custom_id"] == "cli-bad":
            assert result["response"]["status_code"] == 422 and result["error"]["code"] == "invalid_input"
        else:
            assert_valid_sentiment(result)


def test_batch_run_rejects_a_bad_file_before_starting_the_engine(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(jsonl(wrapper_lines(1)) + b"{broken\n")
    run = subprocess.run(
        [sys.executable, "-m", "server.cli", "batch", "run", str(source), str(tmp_path / "out.jsonl")],
        cwd=REPO,
        env=server_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2
    assert "error:" in run.stderr and "line 2: not valid JSON" in run.stderr
    assert not (tmp_path / "out.jsonl").exists()
