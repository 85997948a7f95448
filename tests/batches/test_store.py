"""The SQLite store: one result per request, survives reopening, output in line order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.batches.jsonl import BatchLine
from server.batches.store import BatchNotCancellable, BatchStore
from wrappers.errors import NotFound

URL = "/v1/wrappers/sentiment/invoke"


def lines(n: int) -> list[BatchLine]:
    return [BatchLine(i + 1, f"req-{i}", "POST", URL, {"input": {"text": f"t{i}"}}) for i in range(n)]


@pytest.fixture
def store(tmp_path: Path) -> BatchStore:
    return BatchStore(tmp_path / "state.sqlite3")


def test_wal_and_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first = BatchStore(path)
    file = first.create_file("in.jsonl", "batch", b"abc")
    batch = first.create_batch(URL, file.id, "24h", {"k": "v"}, lines(3))
    assert first.record_result(batch.id, "req-1", 200, "req_x", {"output": 1})
    first.close()  # a restart; WAL readers see every committed row
    second = BatchStore(path)
    assert second._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert second.file_content(file.id) == b"abc"
    again = second.get_batch(batch.id)
    assert again.as_openai()["request_counts"] == {"total": 3, "completed": 1, "failed": 0}
    assert again.as_openai()["metadata"] == {"k": "v"}
    assert [item.custom_id for item in second.pending_items(batch.id)] == ["req-0", "req-2"]
    assert second.unfinished_batch_ids() == [batch.id]


def test_a_result_is_recorded_once(store: BatchStore) -> None:
    batch = store.create_batch(URL, "file-x", "24h", None, lines(2))
    assert store.record_result(batch.id, "req-0", 200, "req_a", {"n": 1})
    assert not store.record_result(batch.id, "req-0", 200, "req_b", {"n": 2})
    assert store.get_batch(batch.id).counts.completed == 1


def test_finalize_writes_output_and_error_files_in_line_order(store: BatchStore) -> None:
    batch = store.create_batch(URL, "file-x", "24h", None, lines(3))
    store.record_result(batch.id, "req-2", 200, "req_c", {"n": 2})
    store.record_result(
        batch.id, "req-1", 422, "req_b", {"error": {"code": "invalid_input", "message": "bad"}}
    )
    store.record_result(batch.id, "req-0", 200, "req_a", {"n": 0})
    assert store.transition(batch.id, ("validating",), "in_progress")
    assert not store.transition(batch.id, ("validating",), "in_progress")
    assert store.transition(batch.id, ("in_progress",), "finalizing")
    done = store.finalize(batch.id, "completed").as_openai()
    assert done["status"] == "completed" and done["completed_at"] >= done["created_at"]
    output = [json.loads(x) for x in store.file_content(done["output_file_id"]).splitlines()]
    assert [x["custom_id"] for x in output] == ["req-0", "req-2"]
    assert output[0]["response"] == {"status_code": 200, "request_id": "req_a", "body": {"n": 0}}
    assert output[0]["id"].startswith("batch_req_") and output[0]["error"] is None
    errors = [json.loads(x) for x in store.file_content(done["error_file_id"]).splitlines()]
    assert errors == [
        {
            "id": errors[0]["id"],
            "custom_id": "req-1",
            "response": {
                "status_code": 422,
                "request_id": "req_b",
                "body": {"error": {"code": "invalid_input", "message": "bad"}},
            },
            "error": {"code": "invalid_input", "message": "bad"},
        }
    ]
    assert store.unfinished_batch_ids() == []
    # finalizing twice (a restart right after) changes nothing
    assert store.finalize(batch.id, "completed").as_openai()["output_file_id"] == done["output_file_id"]


def test_cancel_rules(store: BatchStore) -> None:
    batch = store.create_batch(URL, "file-x", "24h", None, lines(1))
    assert store.request_cancel(batch.id).status == "cancelling"
    assert store.request_cancel(batch.id).status == "cancelling"
    cancelled = store.finalize(batch.id, "cancelled")
    assert cancelled.status == "cancelled" and cancelled.row["output_file_id"] is None
    with pytest.raises(NotFound):
        store.request_cancel("batch_nope")
    other = store.create_batch(URL, "file-x", "24h", None, lines(1))
    store.transition(other.id, ("validating",), "failed")
    with pytest.raises(BatchNotCancellable):
        store.request_cancel(other.id)


def test_listing_pages_newest_first(store: BatchStore) -> None:
    ids = [store.create_batch(URL, "file-x", "24h", None, lines(1)).id for _ in range(5)]
    page, more = store.list_batches(limit=2)
    assert [b.id for b in page] == ids[::-1][:2] and more
    page, more = store.list_batches(after=page[-1].id, limit=10)
    assert [b.id for b in page] == ids[::-1][2:] and not more
