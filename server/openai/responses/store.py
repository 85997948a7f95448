"""Stored responses: kept in the server's database (SQLite, or the PostgreSQL that replicas
share), owned by the API key that made them.

Each row holds the response as answered, the request's input items, and the whole
conversation as chat messages (earlier turns, this input, this output), which is what
``previous_response_id`` continues. Bounded: rows older than
``Limits.stored_response_ttl_s`` and beyond the newest ``Limits.max_stored_responses`` are
deleted as new ones arrive. A response another key made is a 404, as files and batches are.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from fastapi import Request

from server.limits import Limits
from server.storage.database import Database
from wrappers.errors import NotFound

__all__ = ["ResponseStore", "StoredResponse", "get_responses"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,  -- epoch seconds; the newest are kept
    owner_key TEXT,  -- SHA-256 digest of the creator's API key (None: no keys configured)
    response TEXT NOT NULL,
    input_items TEXT NOT NULL,
    conversation TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_created ON responses (created_at);
"""


class StoredResponse:
    def __init__(self, row: Mapping[str, Any]) -> None:
        self.id: str = row["id"]
        self.response: dict[str, Any] = json.loads(row["response"])
        self.input_items: list[dict[str, Any]] = json.loads(row["input_items"])
        self.conversation: list[dict[str, Any]] = json.loads(row["conversation"])


class ResponseStore:
    def __init__(self, db: Database, limits: Limits) -> None:
        self._limits = limits
        self._db = db
        db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def save(
        self,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
        conversation: list[dict[str, Any]],
        owner: str | None,
    ) -> None:
        now = time.time()
        with self._db.transaction() as db:
            db.execute(
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
            db.execute(
                "DELETE FROM responses WHERE created_at < ?", (now - self._limits.stored_response_ttl_s,)
            )
            db.execute(
                "DELETE FROM responses WHERE id NOT IN "
                "(SELECT id FROM responses ORDER BY created_at DESC, id DESC LIMIT ?)",
                (self._limits.max_stored_responses,),
            )

    def get(self, response_id: str, viewer: str | None, param: str = "response_id") -> StoredResponse:
        row = self._db.execute("SELECT * FROM responses WHERE id = ?", (response_id,)).fetchone()
        if row is None or (viewer is not None and row["owner_key"] != viewer):
            raise NotFound(f"no stored response {response_id!r}", param=param)
        return StoredResponse(row)

    def delete(self, response_id: str, viewer: str | None) -> None:
        self.get(response_id, viewer)
        self._db.execute("DELETE FROM responses WHERE id = ?", (response_id,))

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) AS n FROM responses").fetchone()["n"])


async def get_responses(request: Request) -> ResponseStore:
    store: ResponseStore = request.app.state.responses
    return store
