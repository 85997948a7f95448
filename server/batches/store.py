"""Durable batch state: files, batches and one row per request, in SQLite (WAL) or PostgreSQL.

Every result is committed on its own the moment it arrives, and a request's row can be
completed only once (``UPDATE ... WHERE state = 'pending'`` on a row keyed by
``(batch_id, custom_id)``), so a server killed at any instant loses only requests that
were still running. Requests are run under leases: a runner claims pending rows for
``lease_s`` seconds and renews them while it works, so when a replica (or a process)
dies its rows are claimed by another once the lease runs out, and a row answered by
both is still answered once. Output files are built from the completed rows in line
order, in the same transaction that completes the batch.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from server.batches.jsonl import BatchLine, result_line
from server.batches.records import (
    UNFINISHED,
    BatchCounts,
    BatchRecord,
    FileRecord,
    PendingItem,
    Status,
)
from server.batches.tables import ADDED_COLUMNS, SCHEMA
from server.storage.database import Database
from wrappers.errors import BadRequest, Conflict, NotFound

__all__ = [
    "UNFINISHED",
    "BatchCounts",
    "BatchNotCancellable",
    "BatchRecord",
    "BatchStore",
    "FileRecord",
    "PendingItem",
    "Status",
]

_TIMESTAMPED = {"in_progress", "finalizing", "completed", "failed", "cancelling", "cancelled"}


def _pending(row: Mapping[str, Any]) -> PendingItem:
    request = json.loads(row["request"])
    return PendingItem(row["line_no"], row["custom_id"], request["method"], request["url"], request["body"])


class BatchNotCancellable(BadRequest):
    status = 409
    code = "batch_not_cancellable"


def _now() -> int:
    return int(time.time())


def _result_line(item: Mapping[str, Any]) -> bytes:
    return result_line(
        item["result_id"],
        item["custom_id"],
        item["status_code"],
        item["request_id"],
        json.loads(item["body"]),
    )


# Who may see a row: with API keys configured, a caller sees only the files and batches made
# with its own key (someone else's id answers 404, as an unknown one does); ``viewer`` None
# (no keys configured, or the server's own runner) sees every row.
_VISIBLE = "(CAST(:viewer AS TEXT) IS NULL OR owner_key = :viewer)"


class BatchStore:
    """Files, batches and per-request results in ``db`` (one store per process, on its event loop).

    Reads that serve a caller take ``viewer``, the caller's API key digest (None: all rows).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self.where = db.where
        db.executescript(SCHEMA.format(blob=db.blob))
        for table, columns in ADDED_COLUMNS.items():
            present = db.columns(table)
            for name, definition in columns.items():
                if name not in present:  # a store from before this column existed
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")

    def close(self) -> None:
        self._db.close()

    # -- files ---------------------------------------------------------------------------

    def _insert_file(
        self, db: Database, filename: str, purpose: str, content: bytes, owner_key: str | None
    ) -> FileRecord:
        record = FileRecord(f"file-{secrets.token_hex(12)}", filename, purpose, len(content), _now())
        db.execute(
            "INSERT INTO files (id, filename, purpose, bytes, created_at, content, owner_key) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (record.id, filename, purpose, record.bytes, record.created_at, content, owner_key),
        )
        return record

    def create_file(
        self, filename: str, purpose: str, content: bytes, owner_key: str | None = None
    ) -> FileRecord:
        with self._db.transaction() as db:
            return self._insert_file(db, filename, purpose, content, owner_key)

    def get_file(self, file_id: str, viewer: str | None = None) -> FileRecord:
        row = self._db.execute(
            f"SELECT id, filename, purpose, bytes, created_at FROM files WHERE id = :id AND {_VISIBLE}",
            {"id": file_id, "viewer": viewer},
        ).fetchone()
        if row is None:
            raise NotFound(f"no file {file_id!r}", param="file_id")
        return FileRecord(**dict(row))

    def list_files(self, purpose: str | None = None, viewer: str | None = None) -> list[FileRecord]:
        rows = self._db.execute(
            "SELECT id, filename, purpose, bytes, created_at FROM files "
            f"WHERE (CAST(:purpose AS TEXT) IS NULL OR purpose = :purpose) AND {_VISIBLE}"
            " ORDER BY created_at, id",
            {"purpose": purpose, "viewer": viewer},
        ).fetchall()
        return [FileRecord(**dict(row)) for row in rows]

    def file_content(self, file_id: str, viewer: str | None = None) -> bytes:
        row = self._db.execute(
            f"SELECT content FROM files WHERE id = :id AND {_VISIBLE}", {"id": file_id, "viewer": viewer}
        ).fetchone()
        if row is None:
            raise NotFound(f"no file {file_id!r}", param="file_id")
        return bytes(row["content"])

    def delete_file(self, file_id: str, viewer: str | None = None) -> None:
        """Delete a file, unless an unfinished batch reads it (it would have nothing to resume from)."""
        with self._db.transaction() as db:
            found = db.execute(
                f"SELECT id FROM files WHERE id = :id AND {_VISIBLE}", {"id": file_id, "viewer": viewer}
            ).fetchone()
            if found is None:
                raise NotFound(f"no file {file_id!r}", param="file_id")
            marks = ", ".join("?" for _ in UNFINISHED)
            busy = db.execute(
                f"SELECT id FROM batches WHERE input_file_id = ? AND status IN ({marks})",
                (file_id, *UNFINISHED),
            ).fetchone()
            if busy is not None:
                raise Conflict(
                    f"file {file_id!r} is the input of batch {busy['id']}, which has not finished; "
                    "cancel it or wait for it first",
                    param="file_id",
                )
            db.execute("DELETE FROM files WHERE id = ?", (file_id,))

    # -- batches -------------------------------------------------------------------------

    def create_batch(
        self,
        endpoint: str,
        input_file_id: str,
        completion_window: str,
        metadata: dict[str, str] | None,
        lines: Sequence[BatchLine],
        owner_key: str | None = None,
    ) -> BatchRecord:
        batch_id = f"batch_{secrets.token_hex(12)}"
        with self._db.transaction(serialise="batches") as db:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 AS next_seq FROM batches").fetchone()[
                "next_seq"
            ]
            db.execute(
                "INSERT INTO batches (id, seq, endpoint, input_file_id, completion_window, status, "
                "created_at, metadata, owner_key) VALUES (?, ?, ?, ?, ?, 'validating', ?, ?, ?)",
                (
                    batch_id,
                    seq,
                    endpoint,
                    input_file_id,
                    completion_window,
                    _now(),
                    json.dumps(metadata) if metadata is not None else None,
                    owner_key,
                ),
            )
            db.executemany(
                "INSERT INTO batch_items (batch_id, line_no, custom_id, request) VALUES (?, ?, ?, ?)",
                [(batch_id, line.line_no, line.custom_id, line.request_json()) for line in lines],
            )
        return self.get_batch(batch_id)

    def _counts(self, batch_id: str) -> BatchCounts:
        row = self._db.execute(
            "SELECT COUNT(*) AS total, "
            "COALESCE(SUM(CASE WHEN state = 'done' AND status_code < 300 THEN 1 ELSE 0 END), 0) AS ok, "
            "COALESCE(SUM(CASE WHEN state = 'done' AND status_code >= 300 THEN 1 ELSE 0 END), 0) AS failed "
            "FROM batch_items WHERE batch_id = ?",
            (batch_id,),
        ).fetchone()
        return BatchCounts(int(row["total"]), int(row["ok"]), int(row["failed"]))

    def get_batch(self, batch_id: str, viewer: str | None = None) -> BatchRecord:
        row = self._db.execute(
            f"SELECT * FROM batches WHERE id = :id AND {_VISIBLE}", {"id": batch_id, "viewer": viewer}
        ).fetchone()
        if row is None:
            raise NotFound(f"no batch {batch_id!r}", param="batch_id")
        return BatchRecord(dict(row), self._counts(batch_id))

    def list_batches(
        self, after: str | None = None, limit: int = 20, viewer: str | None = None
    ) -> tuple[list[BatchRecord], bool]:
        """Newest first, OpenAI's cursor paging: the page after batch ``after``, and whether more remain."""
        if after is not None:
            cursor = self._db.execute(
                f"SELECT seq FROM batches WHERE id = :id AND {_VISIBLE}", {"id": after, "viewer": viewer}
            ).fetchone()
            if cursor is None:
                raise NotFound(f"no batch {after!r}", param="after")
            below = int(cursor["seq"])
        else:
            below = 2**62
        rows = self._db.execute(
            f"SELECT id FROM batches WHERE seq < :below AND {_VISIBLE} ORDER BY seq DESC LIMIT :limit",
            {"below": below, "viewer": viewer, "limit": limit + 1},
        ).fetchall()
        return [self.get_batch(row["id"]) for row in rows[:limit]], len(rows) > limit

    def unfinished_batch_ids(self) -> list[str]:
        marks = ",".join("?" for _ in UNFINISHED)
        rows = self._db.execute(
            f"SELECT id FROM batches WHERE status IN ({marks}) ORDER BY seq", UNFINISHED
        ).fetchall()
        return [row["id"] for row in rows]

    def set_status(self, batch_id: str, status: Status, errors: list[dict[str, Any]] | None = None) -> None:
        stamp = f", {status}_at = :now" if status in _TIMESTAMPED else ""
        with self._db.transaction() as db:
            db.execute(
                f"UPDATE batches SET status = :status{stamp}, errors = COALESCE(:errors, errors) WHERE id = :id",
                {
                    "status": status,
                    "now": _now(),
                    "id": batch_id,
                    "errors": json.dumps({"object": "list", "data": errors}) if errors else None,
                },
            )

    def transition(self, batch_id: str, before: Sequence[Status], after: Status) -> bool:
        """Move a batch from one of ``before`` to ``after``; False if it was in another state."""
        stamp = f", {after}_at = ?" if after in _TIMESTAMPED else ""
        marks = ",".join("?" for _ in before)
        with self._db.transaction() as db:
            cursor = db.execute(
                f"UPDATE batches SET status = ?{stamp} WHERE id = ? AND status IN ({marks})",
                (after, *([_now()] if stamp else []), batch_id, *before),
            )
            return cursor.rowcount == 1

    def request_cancel(self, batch_id: str, viewer: str | None = None) -> BatchRecord:
        record = self.get_batch(batch_id, viewer)
        if self.transition(batch_id, ("validating", "in_progress"), "cancelling"):
            return self.get_batch(batch_id)
        if record.status in ("cancelling", "cancelled"):
            return record
        raise BatchNotCancellable(f"batch {batch_id} is {record.status} and cannot be cancelled")

    # -- items ---------------------------------------------------------------------------

    def pending_items(self, batch_id: str) -> list[PendingItem]:
        """Every request of the batch still without a result, leased or not."""
        rows = self._db.execute(
            "SELECT line_no, custom_id, request FROM batch_items "
            "WHERE batch_id = ? AND state = 'pending' ORDER BY line_no",
            (batch_id,),
        ).fetchall()
        return [_pending(row) for row in rows]

    def has_pending(self, batch_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 AS one FROM batch_items WHERE batch_id = ? AND state = 'pending' LIMIT 1", (batch_id,)
        ).fetchone()
        return row is not None

    # Lease times are the database's clock, never a replica's: a replica whose clock runs
    # ahead would otherwise take live leases.

    def claim_items(self, batch_id: str, runner: str, limit: int, lease_s: float) -> list[PendingItem]:
        """Lease up to ``limit`` pending requests that nobody holds (or whose lease ran out)."""
        now = self._db.now
        with self._db.transaction() as db:
            rows = db.execute(
                "SELECT line_no, custom_id, request FROM batch_items WHERE batch_id = ? AND state = 'pending'"
                f" AND (lease_until IS NULL OR lease_until < {now}) ORDER BY line_no LIMIT ?"
                + db.skip_locked,
                (batch_id, limit),
            ).fetchall()
            db.executemany(
                f"UPDATE batch_items SET lease_owner = ?, lease_until = {now} + ? WHERE batch_id = ? AND line_no = ?",
                [(runner, lease_s, batch_id, row["line_no"]) for row in rows],
            )
        return [_pending(row) for row in rows]

    def renew_leases(self, runner: str, lease_s: float) -> int:
        """Extend every lease ``runner`` holds on a request still pending; how many it holds."""
        cursor = self._db.execute(
            f"UPDATE batch_items SET lease_until = {self._db.now} + ? WHERE lease_owner = ? AND state = 'pending'",
            (lease_s, runner),
        )
        return cursor.rowcount

    def release_leases(self, runner: str, batch_id: str | None = None) -> None:
        """Give up ``runner``'s unfinished requests (all, or one batch's) for others to claim now."""
        self._db.execute(
            "UPDATE batch_items SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = :runner"
            " AND state = 'pending' AND (CAST(:batch AS TEXT) IS NULL OR batch_id = :batch)",
            {"runner": runner, "batch": batch_id},
        )

    def record_result(
        self, batch_id: str, custom_id: str, status_code: int, request_id: str, body: Any
    ) -> bool:
        """Commit one request's result. False (and nothing written) if it already has one, or
        if the batch no longer runs (cancelled through another replica while this one ran it:
        its output file is written, and a late answer would count without being in it)."""
        with self._db.transaction() as db:
            cursor = db.execute(
                "UPDATE batch_items SET state = 'done', result_id = ?, request_id = ?, status_code = ?, body = ? "
                "WHERE batch_id = ? AND custom_id = ? AND state = 'pending' AND EXISTS (SELECT 1 FROM batches"
                " WHERE batches.id = batch_items.batch_id AND batches.status IN ('validating', 'in_progress'))",
                (
                    f"batch_req_{secrets.token_hex(12)}",
                    request_id,
                    status_code,
                    json.dumps(body, separators=(",", ":"), ensure_ascii=False),
                    batch_id,
                    custom_id,
                ),
            )
            return cursor.rowcount == 1

    def finalize(self, batch_id: str, status: Literal["completed", "cancelled"]) -> BatchRecord:
        """Write the output and error files from the done rows and close the batch, atomically."""
        expected = "finalizing" if status == "completed" else "cancelling"
        with self._db.transaction() as db:
            current = db.execute(
                f"SELECT status, owner_key FROM batches WHERE id = ?{db.for_update}", (batch_id,)
            ).fetchone()
            if current is None or current["status"] != expected:
                return self.get_batch(batch_id)
            rows = db.execute(
                "SELECT custom_id, result_id, request_id, status_code, body FROM batch_items "
                "WHERE batch_id = ? AND state = 'done' ORDER BY line_no",
                (batch_id,),
            ).fetchall()
            owner = current["owner_key"]  # the batch's results are its creator's files
            output = b"".join(_result_line(row) for row in rows if row["status_code"] < 300)
            errors = b"".join(_result_line(row) for row in rows if row["status_code"] >= 300)
            output_id = (
                self._insert_file(db, f"{batch_id}_output.jsonl", "batch_output", output, owner).id
                if output
                else None
            )
            error_id = (
                self._insert_file(db, f"{batch_id}_error.jsonl", "batch_output", errors, owner).id
                if errors
                else None
            )
            db.execute(
                f"UPDATE batches SET status = ?, {status}_at = ?, output_file_id = ?, error_file_id = ? WHERE id = ?",
                (status, _now(), output_id, error_id, batch_id),
            )
        return self.get_batch(batch_id)
