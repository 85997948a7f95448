"""Stored responses: kept in the server's SQLite file, owned by the API key that made them.

Each row holds the response as answered, the request's input items, and the whole
conversation as chat messages (earlier turns, this input, this output), which is what
``previous_response_id`` continues. Bounded: rows older than
``Limits.stored_response_ttl_s`` and beyond the newest ``Limits.max_stored_responses`` are
deleted as new ones arrive. A response another key made is a 404, as files and batches are.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import Request

from server.limits import Limits
from wrappers.errors import NotFound

__all__ = ["ResponseStore", "StoredResponse", "get_responses"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    owner_key TEXT,  -- SHA-256 digest of the creator's API key (None: no keys configured)
    response TEXT NOT NULL,
    input_items TEXT NOT NULL,
    conversation TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_created ON responses (created_at);
"""


class StoredResponse:
    def __init__(self, row: sqlite3.Row) -> None:
        self.id: str = row["id"]
        self.response: dict[str, Any] = json.loads(row["response"])
        self.input_items: list[dict[str, Any]] = json.loads(row["input_items"])
        self.conversation: list[dict[str, Any]] = json.loads(row["conversation"])


class ResponseStore:
    def __init__(self, path: Path, limits: Limits) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._limits = limits
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def save(
        self,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
        conversation: list[dict[str, Any]],
        owner: str | None,
    ) -> None:
        now = int(time.time())
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO responses (id, created_at, owner_key, response, input_items, conversation) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        response["id"],
                        now,
                        owner,
                        json.dumps(response, ensure_ascii=False),
                        json.dumps(input_items, ensure_ascii=False),
                        json.dumps(conversation, ensure_ascii=False),
                    ),
                )
                self._db.execute(
                    "DELETE FROM responses WHERE created_at < ?", (now - self._limits.stored_response_ttl_s,)
                )
                self._db.execute(
                    "DELETE FROM responses WHERE id NOT IN "
                    "(SELECT id FROM responses ORDER BY created_at DESC, rowid DESC LIMIT ?)",
                    (self._limits.max_stored_responses,),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def get(self, response_id: str, viewer: str | None, param: str = "response_id") -> StoredResponse:
        with self._lock:
            row = self._db.execute("SELECT * FROM responses WHERE id = ?", (response_id,)).fetchone()
        if row is None or (viewer is not None and row["owner_key"] != viewer):
            raise NotFound(f"no stored response {response_id!r}", param=param)
        return StoredResponse(row)

    def delete(self, response_id: str, viewer: str | None) -> None:
        self.get(response_id, viewer)
        with self._lock:
            self._db.execute("DELETE FROM responses WHERE id = ?", (response_id,))

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


async def get_responses(request: Request) -> ResponseStore:
    store: ResponseStore = request.app.state.responses
    return store
