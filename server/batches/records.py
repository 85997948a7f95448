"""What the store returns: file and batch records (OpenAI's objects) and pending requests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "COMPLETION_WINDOW_S",
    "UNFINISHED",
    "BatchCounts",
    "BatchRecord",
    "FileRecord",
    "PendingItem",
    "Status",
]

Status = Literal["validating", "failed", "in_progress", "finalizing", "completed", "cancelling", "cancelled"]
UNFINISHED: tuple[Status, ...] = ("validating", "in_progress", "finalizing", "cancelling")
COMPLETION_WINDOW_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int

    def as_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


@dataclass(frozen=True, slots=True)
class BatchCounts:
    total: int
    completed: int
    failed: int

    @property
    def done(self) -> int:
        return self.completed + self.failed


@dataclass(frozen=True, slots=True)
class BatchRecord:
    row: dict[str, Any]
    counts: BatchCounts

    @property
    def id(self) -> str:
        return str(self.row["id"])

    @property
    def owner_key(self) -> str | None:
        return self.row["owner_key"]

    @property
    def status(self) -> Status:
        status: Status = self.row["status"]
        return status

    def as_openai(self) -> dict[str, Any]:
        row = self.row
        return {
            "id": row["id"],
            "object": "batch",
            "endpoint": row["endpoint"],
            "input_file_id": row["input_file_id"],
            "completion_window": row["completion_window"],
            "status": row["status"],
            "output_file_id": row["output_file_id"],
            "error_file_id": row["error_file_id"],
            "created_at": row["created_at"],
            "in_progress_at": row["in_progress_at"],
            "expires_at": row["created_at"] + COMPLETION_WINDOW_S,
            "finalizing_at": row["finalizing_at"],
            "completed_at": row["completed_at"],
            "failed_at": row["failed_at"],
            "expired_at": None,
            "cancelling_at": row["cancelling_at"],
            "cancelled_at": row["cancelled_at"],
            "request_counts": {
                "total": self.counts.total,
                "completed": self.counts.completed,
                "failed": self.counts.failed,
            },
            "metadata": json.loads(row["metadata"]) if row["metadata"] else None,
            "errors": json.loads(row["errors"]) if row["errors"] else None,
        }


@dataclass(frozen=True, slots=True)
class PendingItem:
    line_no: int
    custom_id: str
    method: str
    url: str
    body: dict[str, Any]
