"""Shadow runs: a candidate version answers beside the served one; only its answer is kept.

The caller's answer never waits for the candidate: the shadow call starts after the
served answer is ready, as a background task, and at most ``max_in_flight`` run at once
(more are dropped and counted), so shadowing takes at most that many of the engine's
admission slots from live traffic. Each comparison is stored in the state database
(bounded to the newest ``KEEP`` rows) with the digest of the caller's API key, who alone may
read it back (inputs are the callers' data), and counted by outcome for ``/metrics``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from wrappers.errors import WrapserveError

__all__ = ["ShadowRunner", "ShadowStore"]

log = logging.getLogger("wrapserve")
KEEP = 10_000
Outcome = Literal["agreed", "disagreed", "error", "dropped"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shadow_answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    wrapper TEXT NOT NULL,
    channel TEXT NOT NULL,
    served_version TEXT NOT NULL,
    candidate_version TEXT NOT NULL,
    input TEXT NOT NULL,
    served_output TEXT NOT NULL,
    candidate_output TEXT,
    error TEXT,
    agreed INTEGER NOT NULL,
    owner_key TEXT  -- SHA-256 digest of the caller's API key (None: no keys configured)
);
CREATE INDEX IF NOT EXISTS shadow_answers_by_wrapper ON shadow_answers (wrapper, id);
"""


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class ShadowStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(shadow_answers)")}
        if "owner_key" not in columns:  # a table from before owners were recorded
            try:
                self._db.execute("ALTER TABLE shadow_answers ADD COLUMN owner_key TEXT")
            except sqlite3.OperationalError as error:
                if "duplicate column" not in str(error):  # else: another process added it first
                    raise
        self._closed = False

    def add(self, row: dict[str, Any]) -> None:
        with self._lock:
            if self._closed:
                return  # shutting down: a late comparison is not worth an error
            self._db.execute(
                "INSERT INTO shadow_answers (created_at, wrapper, channel, served_version, candidate_version,"
                " input, served_output, candidate_output, error, agreed, owner_key)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    row["wrapper"],
                    row["channel"],
                    row["served_version"],
                    row["candidate_version"],
                    _canonical(row["input"]),
                    _canonical(row["served_output"]),
                    None if row["candidate_output"] is None else _canonical(row["candidate_output"]),
                    row["error"],
                    int(row["agreed"]),
                    row["owner"],
                ),
            )
            self._db.execute(
                "DELETE FROM shadow_answers WHERE id <= (SELECT MAX(id) FROM shadow_answers) - ?", (KEEP,)
            )

    def recent(self, wrapper: str, limit: int, viewer: str | None) -> list[dict[str, Any]]:
        """The newest comparisons of ``wrapper`` made by ``viewer``'s key (all: no keys configured)."""
        with self._lock:
            if self._closed:
                return []
            rows = self._db.execute(
                "SELECT * FROM shadow_answers WHERE wrapper = ? AND (? IS NULL OR owner_key = ?)"
                " ORDER BY id DESC LIMIT ?",
                (wrapper, viewer, viewer, limit),
            ).fetchall()
        return [
            {
                "created_at": row["created_at"],
                "channel": row["channel"],
                "served_version": row["served_version"],
                "candidate_version": row["candidate_version"],
                "input": json.loads(row["input"]),
                "served_output": json.loads(row["served_output"]),
                "candidate_output": None
                if row["candidate_output"] is None
                else json.loads(row["candidate_output"]),
                "error": row["error"],
                "agreed": bool(row["agreed"]),
            }
            for row in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()


class ShadowRunner:
    def __init__(self, store: ShadowStore, max_in_flight: int) -> None:
        self.store = store
        self.max_in_flight = max_in_flight
        self.outcomes: Counter[tuple[str, str, str, Outcome]] = Counter()  # read by /metrics
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False

    def submit(
        self,
        candidate: Callable[[], Awaitable[Any]],
        *,
        wrapper: str,
        channel: str,
        served_version: str,
        candidate_version: str,
        raw_input: Any,
        served_output: Any,
        owner: str | None = None,
    ) -> None:
        """Start the candidate's call in the background (or drop it when enough are running)."""
        key = (wrapper, served_version, candidate_version)
        if self._stopped or len(self._tasks) >= self.max_in_flight:
            self.outcomes[(*key, "dropped")] += 1
            return
        row = {
            "wrapper": wrapper,
            "channel": channel,
            "served_version": served_version,
            "candidate_version": candidate_version,
            "input": raw_input,
            "served_output": served_output,
            "owner": owner,
        }
        task = asyncio.create_task(self._run(candidate, row), name=f"shadow-{wrapper}@{candidate_version}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, candidate: Callable[[], Awaitable[Any]], row: dict[str, Any]) -> None:
        key = (row["wrapper"], row["served_version"], row["candidate_version"])
        outcome: Outcome
        try:
            answer = await candidate()
        except WrapserveError as error:
            row.update(candidate_output=None, error=f"{error.code}: {error.message}", agreed=False)
            outcome = "error"
        except Exception as error:  # a shadow must never surface; it is counted and recorded
            log.exception("shadow call of %s@%s failed", row["wrapper"], row["candidate_version"])
            row.update(candidate_output=None, error=f"internal_error: {type(error).__name__}", agreed=False)
            outcome = "error"
        else:
            agreed = _canonical(answer.output) == _canonical(row["served_output"])
            row.update(candidate_output=answer.output, error=None, agreed=agreed)
            outcome = "agreed" if agreed else "disagreed"
        self.outcomes[(*key, outcome)] += 1
        try:
            await asyncio.to_thread(self.store.add, row)
        except sqlite3.Error as error:
            log.warning(
                "shadow answer of %s@%s not stored: %s", row["wrapper"], row["candidate_version"], error
            )

    async def idle(self) -> None:
        """Wait for the shadow calls in flight (tests, and shutdown before the engine stops)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        self._stopped = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self.store.close()
