"""Release channels on the session server (real vLLM): splits, shadows, calibration, reloads, gated promotion.

The server reads ``HOME/releases.toml`` at start (absent: no channels) and again on
SIGHUP; each test writes the file it needs and the fixture empties it afterwards, so the
other tests see a server without channels.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from openai.types.responses import ResponsePromptParam

from tests.conftest import REPO, USER_WRAPPERS, RunningServer, server_env
from wrappers.catalogue.classify import Sentiment
from wrappers.evals.store import EvalStore, StoredCase

TICKET: dict[str, str] = {"text": "The checkout page is down and customers cannot pay."}
CHANNELS = """
[ticket-priority.channels]
stable = { version = "1.0.0", shadow = "2.0.0" }
canary = { split = { "1.0.0" = 50, "2.0.0" = 50 } }
"""

Apply = Callable[[str], dict[str, Any]]


def releases(server: RunningServer) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{server.base_url}/v1/releases", timeout=30).json()
    return answer


@pytest.fixture
def apply(server: RunningServer) -> Iterator[Apply]:
    """Write the releases file, SIGHUP the server, wait until it answered (reloaded or refused)."""
    path = server.home / "releases.toml"

    def write(text: str) -> dict[str, Any]:
        before = releases(server)
        path.write_text(text)
        os.kill(server.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = releases(server)
            if now["generation"] != before["generation"] or now["last_error"] not in (
                None,
                before["last_error"],
            ):
                return now
            time.sleep(0.1)
        raise AssertionError("the server did not take the releases file")

    yield write
    write("")  # no channels, no calibrations for the tests after this one
    assert releases(server)["wrappers"] == {}


def invoke(server: RunningServer, ref: str, key: str | None = None, body: Any = TICKET) -> dict[str, Any]:
    headers = {"X-Wrapserve-Route-Key": key} if key else {}
    response = httpx.post(
        f"{server.base_url}/v1/wrappers/{ref}/invoke", json={"input": body}, headers=headers, timeout=120
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_a_split_sends_the_same_key_to_the_same_version_and_spreads_keys(
    server: RunningServer, apply: Apply
) -> None:
    state = apply(CHANNELS)
    assert state["last_error"] is None and "canary" in state["wrappers"]["ticket-priority"]["channels"]
    keys = [f"customer-{n}" for n in range(16)]
    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda key: invoke(server, "ticket-priority@canary", key), keys))
        again = list(pool.map(lambda key: invoke(server, "ticket-priority@canary", key), keys))
    served = [answer["version"] for answer in first]
    assert served == [answer["version"] for answer in again]  # sticky per key
    assert all(answer["channel"] == "canary" for answer in first)
    print("16 keys on a 50/50 split:", {version: served.count(version) for version in set(served)})
    assert 3 <= served.count("1.0.0") <= 13  # both versions serve (binomial(16, 0.5): outside is < 0.5%)
    metrics = httpx.get(f"{server.base_url}/metrics", timeout=30).text
    assert (
        'wrapserve_wrapper_answers_total{channel="canary",version="2.0.0",wrapper="ticket-priority"}'
        in metrics
    )


def test_a_shadow_records_the_candidate_without_changing_the_answer(
    server: RunningServer, apply: Apply
) -> None:
    apply(CHANNELS)
    pinned = invoke(server, "ticket-priority@1.0.0")
    served = invoke(server, "ticket-priority@stable")
    assert (served["version"], served["channel"]) == ("1.0.0", "stable")
    assert served["output"] == pinned["output"] and served["fingerprint"] == pinned["fingerprint"]
    deadline = time.monotonic() + 60
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not rows:
        rows = httpx.get(f"{server.base_url}/v1/releases/ticket-priority/shadow", timeout=30).json()["data"]
        time.sleep(0.2)
    assert rows, "no shadow answer recorded"
    row = rows[0]
    assert (row["served_version"], row["candidate_version"], row["channel"]) == ("1.0.0", "2.0.0", "stable")
    assert row["input"] == TICKET and row["served_output"] == served["output"]
    assert row["error"] is None and set(row["candidate_output"]) == {"priority", "team"}  # 2.0.0's output
    assert row["agreed"] is False  # 2.0.0 answers with a team as well
    metrics = httpx.get(f"{server.base_url}/metrics", timeout=30).text
    assert 'outcome="disagreed",served_version="1.0.0",wrapper="ticket-priority"' in metrics


def test_channels_work_on_the_openai_surface(server: RunningServer, apply: Apply) -> None:
    apply(CHANNELS)
    client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused")
    completion = client.chat.completions.create(
        model="wrapper:ticket-priority@stable", messages=[{"role": "user", "content": json.dumps(TICKET)}]
    )
    assert completion.model == "wrapper:ticket-priority@1.0.0"
    prompt: ResponsePromptParam = {"id": "ticket-priority", "version": "stable", "variables": dict(TICKET)}
    response = client.responses.create(prompt=prompt)
    assert json.loads(response.output_text)["priority"] in ("low", "normal", "urgent")


def test_an_unknown_channel_and_a_bad_file_are_clear_errors(server: RunningServer, apply: Apply) -> None:
    apply(CHANNELS)
    missing = httpx.post(f"{server.base_url}/v1/wrappers/ticket-priority@beta/invoke", json={"input": TICKET})
    assert missing.status_code == 404
    assert "no version or channel 'beta'" in missing.json()["error"]["message"]
    assert "canary, stable" in missing.json()["error"]["message"]
    state = apply('[ticket-priority.channels]\nstable = { version = "9.9.9" }\n')
    assert "9.9.9" in state["last_error"] and "not served" in state["last_error"]
    assert invoke(server, "ticket-priority@stable")["version"] == "1.0.0"  # the previous file stays in force
    state = apply('[ticket-priority.channels]\ncanary = { split = { "1.0.0" = 60, "2.0.0" = 50 } }\n')
    assert "sum to 110" in state["last_error"]


def test_a_calibration_softens_scores_and_abstains_below_its_threshold(
    server: RunningServer, apply: Apply
) -> None:
    text = {"text": "The parcel arrived on Tuesday."}
    raw = invoke(server, Sentiment.ref(), body=text)
    assert "calibrated" not in raw and "abstained" not in raw
    apply(f'[sentiment.calibration."{Sentiment.version}"]\ntemperature = 50.0\nabstain_below = 0.9\n')
    calibrated = invoke(server, Sentiment.ref(), body=text)
    print("raw scores", raw["scores"], "calibrated", calibrated["scores"])
    assert calibrated["calibrated"] is True and calibrated["abstained"] is True
    assert calibrated["output"] == raw["output"]  # the ranking is kept
    assert max(calibrated["scores"].values()) < max(raw["scores"].values())
    assert calibrated["raw_scores"] == pytest.approx(raw["scores"], abs=1e-4)  # what a new fit uses
    apply(f'[sentiment.calibration."{Sentiment.version}"]\ntemperature = 1.0\nmodel = "another-model"\n')
    assert "calibrated" not in invoke(server, Sentiment.ref(), body=text)  # fitted on another model


def wrapserve(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=REPO,
        env=server_env(home, COLUMNS="200", WRAPSERVE_WRAPPERS_DIR=str(USER_WRAPPERS)),
        capture_output=True,
        text=True,
        timeout=300,
    )


def add_run(store: EvalStore, version: str, passed: list[bool]) -> None:
    store.add_run(
        created_at="2026-12-06T00:00:00+00:00",
        model="smollm2-135m-instruct",
        wrapper="ticket-priority",
        version=version,
        fingerprint="sha256:x",
        server_url="http://x",
        cases=[
            StoredCase(i, {"text": str(i)}, {"priority": "low"}, None, (), True, ok)
            for i, ok in enumerate(passed)
        ],
        kind="dataset",
        dataset="tickets.jsonl",
        dataset_hash="f" * 64,
        metrics={"metric": "labels", "accuracy": sum(passed) / len(passed)},
    )


def test_a_gated_promotion_is_refused_when_the_candidate_evaluates_worse(
    server: RunningServer, apply: Apply, tmp_path: Path
) -> None:
    path = server.home / "releases.toml"
    apply('[ticket-priority.channels]\nstable = { version = "1.0.0" }\n')
    store = EvalStore(tmp_path / "wrapserve.sqlite3")
    refused = wrapserve(tmp_path, "release", "promote", "ticket-priority", "2.0.0", "--file", str(path))
    assert refused.returncode == 1 and "no dataset eval run of ticket-priority@2.0.0" in refused.stderr
    add_run(store, "1.0.0", [True, True, True, False])
    add_run(store, "2.0.0", [True, False, False, False])
    refused = wrapserve(tmp_path, "release", "promote", "ticket-priority", "2.0.0", "--file", str(path))
    assert refused.returncode == 1, refused.stdout
    assert "accuracy of ticket-priority@2.0.0 0.250" in refused.stderr and "0.750" in refused.stderr
    assert "the candidate is worse" in refused.stderr and "Traceback" not in refused.stderr
    assert 'version = "1.0.0"' in path.read_text()  # unchanged
    add_run(store, "2.0.0", [True, True, True, True])
    promoted = wrapserve(tmp_path, "release", "promote", "ticket-priority", "2.0.0", "--file", str(path))
    assert promoted.returncode == 0, promoted.stderr
    assert "gate passed" in promoted.stdout
    os.kill(server.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 30
    while releases(server)["wrappers"]["ticket-priority"]["channels"]["stable"]["version"] != "2.0.0":
        assert time.monotonic() < deadline, "the promotion was not reloaded"
        time.sleep(0.1)
    assert invoke(server, "ticket-priority@stable")["version"] == "2.0.0"
