"""The runner's bookkeeping against a small real ASGI app (no engine): stopping it mid-batch
and starting a new one on the same store runs each line exactly once overall."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from server.batches.dispatch import Dispatcher
from server.batches.jsonl import BatchLine
from server.batches.runner import BatchRunner
from server.batches.store import BatchStore
from server.http.errors import install_error_handlers
from server.lifecycle import Lifecycle
from server.storage.database import open_sqlite
from wrappers.errors import BadRequest

URL = "/v1/wrappers/echo/invoke"


def _ready() -> Lifecycle:
    lifecycle = Lifecycle()
    lifecycle.ready()
    return lifecycle


def echo_app(calls: Counter[str], gate: asyncio.Event, free: int) -> FastAPI:
    """Answers ``free`` calls at once, then holds every further call until ``gate`` opens."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post(URL)
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        calls[body["input"]] += 1
        if sum(calls.values()) > free:
            await gate.wait()
        if body["input"] == "bad":
            raise BadRequest("bad input", param="input")
        return {"output": body["input"]}

    return app


def lines(names: list[str]) -> list[BatchLine]:
    return [BatchLine(i + 1, f"id-{name}", "POST", URL, {"input": name}) for i, name in enumerate(names)]


async def wait_until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.01)


async def test_a_stopped_runner_resumes_without_losing_or_repeating(tmp_path: Path) -> None:
    names = [f"n{i}" for i in range(30)] + ["bad"]
    store = BatchStore(open_sqlite(tmp_path / "db.sqlite3"))
    batch = store.create_batch(URL, "file-x", "24h", None, lines(names))
    calls: Counter[str] = Counter()
    gate = asyncio.Event()
    app = echo_app(calls, gate, free=10)
    runner = BatchRunner(
        store, Dispatcher(app), in_flight=4, lifecycle=_ready(), known_wrapper=lambda n: True
    )
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: store.get_batch(batch.id).counts.done >= 7)
    task.cancel()  # the process stops: in-flight calls are abandoned, not recorded
    await asyncio.gather(task, return_exceptions=True)
    store.close()

    store = BatchStore(open_sqlite(tmp_path / "db.sqlite3"))
    before = store.get_batch(batch.id)
    assert before.status == "in_progress" and 7 <= before.counts.done < len(names)
    gate.set()
    runner = BatchRunner(
        store, Dispatcher(app), in_flight=4, lifecycle=_ready(), known_wrapper=lambda n: True
    )
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: store.get_batch(batch.id).status == "completed")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    done = store.get_batch(batch.id).as_openai()
    assert done["request_counts"] == {"total": 31, "completed": 30, "failed": 1}
    out = [json.loads(x) for x in store.file_content(done["output_file_id"]).splitlines()]
    err = [json.loads(x) for x in store.file_content(done["error_file_id"]).splitlines()]
    assert [x["custom_id"] for x in out] == [f"id-n{i}" for i in range(30)]
    assert [x["response"]["body"]["output"] for x in out] == [f"n{i}" for i in range(30)]
    assert err[0]["custom_id"] == "id-bad" and err[0]["response"]["status_code"] == 400
    # a line that finished before the stop never ran again; only abandoned ones ran twice at most
    assert all(count <= 2 for count in calls.values())
    assert sum(1 for count in calls.values() if count == 2) <= 4


async def test_cancel_aborts_running_lines_and_closes_with_what_finished(tmp_path: Path) -> None:
    store = BatchStore(open_sqlite(tmp_path / "db.sqlite3"))
    batch = store.create_batch(URL, "file-x", "24h", None, lines([f"c{i}" for i in range(20)]))
    calls: Counter[str] = Counter()
    app = echo_app(calls, asyncio.Event(), free=5)  # the gate never opens: lines 6+ hang
    runner = BatchRunner(
        store, Dispatcher(app), in_flight=3, lifecycle=_ready(), known_wrapper=lambda n: True
    )
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: store.get_batch(batch.id).counts.done == 5 and sum(calls.values()) == 8)
    store.request_cancel(batch.id)
    runner.cancel(batch.id)
    await wait_until(lambda: store.get_batch(batch.id).status == "cancelled")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    done = store.get_batch(batch.id)
    assert done.counts.done == 5 and sum(calls.values()) == 8  # nothing new started after the cancel
    assert len(store.file_content(done.row["output_file_id"]).splitlines()) == 5


async def test_a_batch_waits_for_the_engine(tmp_path: Path) -> None:
    store = BatchStore(open_sqlite(tmp_path / "db.sqlite3"))
    batch = store.create_batch(URL, "file-x", "24h", None, lines(["a"]))
    lifecycle = Lifecycle()
    calls: Counter[str] = Counter()
    runner = BatchRunner(
        store,
        Dispatcher(echo_app(calls, asyncio.Event(), free=10)),
        in_flight=2,
        lifecycle=lifecycle,
        known_wrapper=lambda n: True,
    )
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(1.2)  # several of the runner's readiness polls
    assert store.get_batch(batch.id).status == "validating" and not calls
    lifecycle.ready()
    await wait_until(lambda: store.get_batch(batch.id).status == "completed")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert calls == Counter({"a": 1})


async def test_a_batch_whose_wrapper_disappeared_fails_validation(tmp_path: Path) -> None:
    store = BatchStore(open_sqlite(tmp_path / "db.sqlite3"))
    batch = store.create_batch(URL, "file-x", "24h", None, lines(["a", "b"]))
    calls: Counter[str] = Counter()
    runner = BatchRunner(
        store,
        Dispatcher(echo_app(calls, asyncio.Event(), free=10)),
        in_flight=2,
        lifecycle=_ready(),
        known_wrapper=lambda n: False,
    )
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: store.get_batch(batch.id).status == "failed")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    failed = store.get_batch(batch.id).as_openai()
    assert failed["failed_at"] and not calls
    assert [e["line"] for e in failed["errors"]["data"]] == [1, 2]
    assert failed["errors"]["data"][0]["message"] == "unknown wrapper 'echo'"
