"""The batch store's tables, written once for SQLite and PostgreSQL (``{blob}``: the bytes type)."""

from __future__ import annotations

__all__ = ["ADDED_COLUMNS", "SCHEMA"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    content {blob} NOT NULL,
    owner_key TEXT  -- SHA-256 digest of the uploader's API key (a batch's output: the batch's)
);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    endpoint TEXT NOT NULL,
    input_file_id TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    status TEXT NOT NULL,
    output_file_id TEXT,
    error_file_id TEXT,
    created_at BIGINT NOT NULL,
    in_progress_at BIGINT,
    finalizing_at BIGINT,
    completed_at BIGINT,
    failed_at BIGINT,
    cancelling_at BIGINT,
    cancelled_at BIGINT,
    metadata TEXT,
    errors TEXT,
    owner_key TEXT  -- SHA-256 digest of the creator's API key; batch lines run with its rights
);
CREATE TABLE IF NOT EXISTS batch_items (
    batch_id TEXT NOT NULL REFERENCES batches(id),
    line_no INTEGER NOT NULL,
    custom_id TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    result_id TEXT,
    request_id TEXT,
    status_code INTEGER,
    body TEXT,
    lease_owner TEXT,  -- the runner working on it (a replica's process)
    lease_until DOUBLE PRECISION,  -- until when (epoch seconds); past it, anyone may claim it
    PRIMARY KEY (batch_id, line_no),
    UNIQUE (batch_id, custom_id)
);
CREATE INDEX IF NOT EXISTS batch_items_state ON batch_items (batch_id, state);
CREATE INDEX IF NOT EXISTS batch_items_lease ON batch_items (lease_owner)
"""

# Columns added since the first stores were written, so an older SQLite file opens in place.
ADDED_COLUMNS = {
    "files": {"owner_key": "TEXT"},
    "batch_items": {"lease_owner": "TEXT", "lease_until": "DOUBLE PRECISION"},
}
