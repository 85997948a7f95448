"""The batch store on both backends (SQLite and PostgreSQL): one result per request, leases,
survives reopening, output in line order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.batches.jsonl import BatchLine
from server.batches.store import BatchNotCancellable, BatchStore
from server.storage.database import DatabaseUnavailable, open_database, open_sqlite
from tests.conftest import fresh_postgres
from wrappers.errors import Conflict, NotFound

URL = "/v1/wrappers/sentiment/invoke"


def lines(n: int) -> list[BatchLine]:
    return [BatchLine(i + 1, f"req-{i}", "POST", URL, {"input": {"text": f"t{i}"}}) for i in range(n)]


@pytest.fixture
def store(database_url: str) -> Iterator[BatchStore]:
    opened = BatchStore(open_database(database_url, Path("unused")))
    yield opened
    opened.close()


def test_wal_and_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first = BatchStore(open_sqlite(path))
    file = first.create_file("in.jsonl", "batch", b"abc")
    batch = first.create_batch(URL, file.id, "24h", {"k": "v"}, lines(3))
    assert first.record_result(batch.id, "req-1", 200, "req_x", {"output": 1})
    first.close()  # a restart; WAL readers see every committed row
    second = BatchStore(open_sqlite(path))
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


def test_a_batch_that_stopped_running_takes_no_late_result(store: BatchStore) -> None:
    batch = store.create_batch(URL, "file-x", "24h", None, lines(2))
    store.transition(batch.id, ("validating",), "in_progress")
    assert store.record_result(batch.id, "req-0", 200, "req_a", {"n": 0})
    store.request_cancel(batch.id)  # through another replica, while this one still runs it
    closed = store.finalize(batch.id, "cancelled")
    assert not store.record_result(batch.id, "req-1", 200, "req_b", {"n": 1})  # the late answer
    again = store.get_batch(batch.id)
    assert again.counts.completed == 1 and closed.row["output_file_id"] == again.row["output_file_id"]
    assert len(store.file_content(again.row["output_file_id"]).splitlines()) == again.counts.completed


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


def test_each_key_sees_only_its_own_files_and_batches(store: BatchStore) -> None:
    mine = store.create_file("in.jsonl", "batch", b"mine", owner_key="key-a")
    theirs = store.create_file("in.jsonl", "batch", b"theirs", owner_key="key-b")
    batch = store.create_batch(URL, mine.id, "24h", None, lines(1), owner_key="key-a")
    assert [f.id for f in store.list_files(viewer="key-a")] == [mine.id]
    assert store.file_content(mine.id, "key-a") == b"mine"
    for read in (store.get_file, store.file_content):
        with pytest.raises(NotFound):
            read(theirs.id, "key-a")  # like an unknown id: nothing says it exists
    assert store.get_batch(batch.id, "key-a").id == batch.id
    with pytest.raises(NotFound):
        store.get_batch(batch.id, "key-b")
    with pytest.raises(NotFound):
        store.request_cancel(batch.id, "key-b")
    assert store.get_batch(batch.id).status == "validating"  # the refused cancel changed nothing
    assert store.list_batches(viewer="key-b") == ([], False)
    with pytest.raises(NotFound):
        store.list_batches(after=batch.id, viewer="key-b")  # no paging from someone else's id
    # No viewer (no keys configured, or the runner): everything.
    assert {f.id for f in store.list_files()} == {mine.id, theirs.id}


def test_a_batchs_result_files_belong_to_its_creator(store: BatchStore) -> None:
    batch = store.create_batch(URL, "file-x", "24h", None, lines(2), owner_key="key-a")
    store.record_result(batch.id, "req-0", 200, "req_a", {"n": 0})
    store.record_result(batch.id, "req-1", 422, "req_b", {"error": {"code": "invalid_input", "message": "x"}})
    store.transition(batch.id, ("validating",), "in_progress")
    store.transition(batch.id, ("in_progress",), "finalizing")
    done = store.finalize(batch.id, "completed").as_openai()
    for file_id in (done["output_file_id"], done["error_file_id"]):
        assert store.get_file(file_id, "key-a").purpose == "batch_output"
        with pytest.raises(NotFound):
            store.file_content(file_id, "key-b")


def test_a_store_from_before_files_had_owners_is_upgraded_in_place(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE files (id TEXT PRIMARY KEY, filename TEXT NOT NULL, purpose TEXT NOT NULL, "
        "bytes INTEGER NOT NULL, created_at INTEGER NOT NULL, content BLOB NOT NULL)"
    )
    old.execute("INSERT INTO files VALUES ('file-old', 'in.jsonl', 'batch', 3, 1, x'616263')")
    old.commit()
    old.close()
    store = BatchStore(open_sqlite(path))
    assert store.file_content("file-old") == b"abc"  # kept, visible without keys
    with pytest.raises(NotFound):
        store.get_file("file-old", "key-a")  # ownerless: no key's own
    assert store.create_file("new.jsonl", "batch", b"x", owner_key="key-a").bytes == 1


def test_a_file_is_deleted_unless_an_unfinished_batch_reads_it(store: BatchStore) -> None:
    file = store.create_file("in.jsonl", "batch", b"abc")
    batch = store.create_batch(URL, file.id, "24h", None, lines(1))
    with pytest.raises(Conflict, match=batch.id):
        store.delete_file(file.id)
    assert store.file_content(file.id) == b"abc"  # refused: nothing changed
    store.set_status(batch.id, "failed")
    store.delete_file(file.id)
    with pytest.raises(NotFound):
        store.get_file(file.id)
    with pytest.raises(NotFound):
        store.delete_file(file.id)
    other = store.create_file("in.jsonl", "batch", b"x", owner_key="a")
    with pytest.raises(NotFound):  # another key's file is as unknown as a missing one
        store.delete_file(other.id, viewer="b")


def test_leases_share_the_pending_requests_and_expire(store: BatchStore) -> None:
    batch = store.create_batch(URL, "file-x", "24h", None, lines(5))
    a = store.claim_items(batch.id, "runner-a", 3, lease_s=60)
    b = store.claim_items(batch.id, "runner-b", 3, lease_s=60)
    assert [item.custom_id for item in a] == ["req-0", "req-1", "req-2"]
    assert [item.custom_id for item in b] == ["req-3", "req-4"]  # never one a holds
    assert store.claim_items(batch.id, "runner-c", 3, lease_s=60) == []
    assert store.record_result(batch.id, "req-0", 200, "req_a", {"n": 0})
    assert store.renew_leases("runner-a", 60) == 2  # req-0 has its result: no longer held
    store.release_leases("runner-b", batch.id)  # b stopped: its requests are free at once
    assert [item.custom_id for item in store.claim_items(batch.id, "runner-c", 9, 60)] == ["req-3", "req-4"]
    # a's lease runs out (a died): its unanswered requests go to whoever claims next
    store.renew_leases("runner-a", -1)
    taken = store.claim_items(batch.id, "runner-c", 9, 60)
    assert [item.custom_id for item in taken] == ["req-1", "req-2"]
    # a comes back late with an answer c also made: the request still has one result
    assert store.record_result(batch.id, "req-1", 200, "req_c", {"by": "c"})
    assert not store.record_result(batch.id, "req-1", 200, "req_a", {"by": "a"})
    assert store.get_batch(batch.id).counts.completed == 2


def test_a_broken_postgresql_connection_is_a_503_then_opened_again() -> None:
    url = fresh_postgres()
    store = BatchStore(open_database(url, Path("unused")))
    file = store.create_file("in.jsonl", "batch", b"abc")
    admin = open_database(url, Path("unused"))
    admin.execute(
        # Only this user's client connections: an autovacuum worker on the same database is a
        # superuser process that a non-superuser may not end (it made this test fail at random).
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
        " AND datname = current_database() AND usename = current_user AND backend_type = 'client backend'"
    )
    with pytest.raises(DatabaseUnavailable, match="unreachable"):
        store.file_content(file.id)
    assert store.file_content(file.id) == b"abc"  # the next statement connects again
    admin.close()
    store.close()
