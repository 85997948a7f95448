"""Two replicas on one PostgreSQL store: a batch created through one is run by both, and when
one is SIGKILLed mid-batch the other takes over its leased requests and finishes the batch,
every custom_id with exactly one result line. The replicas run the whole app on the fake
engine (tests/fixtures/fake_replica.py): what is tested is the store and the leases above
the engine, which the real-engine kill test (test_kill_resume.py) covers on SQLite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from server.storage.database import open_database
from tests.batches.helpers import (
    SENTIMENT,
    assert_once_each,
    assert_valid_sentiment,
    jsonl,
    result_lines,
    wait_for,
    wrapper_lines,
)
from tests.conftest import REPO, free_port, fresh_postgres, postgres_url

LINES = 80
LEASE_S = 3  # a dead replica's requests are taken over this soon


class Replica:
    def __init__(self, home: Path, database_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        home.mkdir(parents=True)
        self.log = home / "replica.log"
        env = {
            **os.environ,
            "WRAPSERVE_HOME": str(home),
            "WRAPSERVE_DATABASE_URL": database_url,
            "WRAPSERVE_BATCH_LEASE_S": str(LEASE_S),
            "WRAPSERVE_LIMITS__MAX_BATCH_IN_FLIGHT": "2",  # slow enough that the kill lands mid-batch
            "PYTHONUNBUFFERED": "1",
        }
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.fixtures.fake_replica", str(self.port), "0.15"],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.client = openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0)

    def wait_ready(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"replica not ready:\n{self.log.read_text(errors='replace')[-3000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    url = fresh_postgres()
    pair = (Replica(tmp_path / "a", url), Replica(tmp_path / "b", url))
    try:
        for replica in pair:
            replica.wait_ready()
        yield pair
    finally:
        for replica in pair:
            replica.kill()


def test_a_replica_killed_mid_batch_is_taken_over_and_nothing_is_lost_or_done_twice(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    lines = wrapper_lines(LINES)
    upload = a.client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    assert b.client.files.retrieve(upload.id).bytes == upload.bytes  # one store: b sees a's file
    batch = a.client.batches.create(
        input_file_id=upload.id,
        endpoint=SENTIMENT,  # type: ignore[arg-type]  # the SDK's Literal lists OpenAI's endpoints only
        completion_window="24h",
    )
    deadline = time.monotonic() + 120
    while (done := a.client.batches.retrieve(batch.id).request_counts) is None or done.completed < 12:
        assert time.monotonic() < deadline, "the batch did not start"
        time.sleep(0.05)
    a.kill()
    print(f"replica a killed with {done.completed} of {LINES} answered")
    finished = wait_for(b.client, batch.id, timeout_s=180)
    assert finished.status == "completed", finished
    assert finished.request_counts is not None
    assert (finished.request_counts.completed, finished.request_counts.failed) == (LINES, 0)
    results = result_lines(b.client, finished.output_file_id)
    assert_once_each(results, {line["custom_id"] for line in lines})
    for line in results:
        assert_valid_sentiment(line)
    # Both replicas ran requests of the batch (the store says who held each last).
    database = open_database(postgres_url(), Path("unused"))
    owners = {
        row["lease_owner"].split(":")[1]  # host:pid:nonce
        for row in database.execute(
            "SELECT DISTINCT lease_owner FROM batch_items WHERE batch_id = ?", (batch.id,)
        ).fetchall()
    }
    database.close()
    assert owners == {str(a.process.pid), str(b.process.pid)}, owners
