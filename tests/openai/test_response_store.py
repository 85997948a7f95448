"""The stored-responses table on both backends (SQLite and PostgreSQL): owners, bounds, deletes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.limits import Limits
from server.openai.responses.store import ResponseStore
from server.storage.database import open_database
from wrappers.errors import NotFound


@pytest.fixture
def store(database_url: str) -> Iterator[ResponseStore]:
    opened = ResponseStore(open_database(database_url, Path("unused")), Limits(max_stored_responses=2))
    yield opened
    opened.close()


def save(store: ResponseStore, response_id: str, owner: str | None) -> None:
    conversation = [{"role": "user", "content": f"hello from {response_id}"}]
    store.save({"id": response_id, "object": "response"}, [{"type": "message"}], conversation, owner)


def test_a_response_is_its_owners_and_the_newest_are_kept(store: ResponseStore) -> None:
    save(store, "resp_1", "key-a")
    save(store, "resp_2", "key-b")
    got = store.get("resp_1", "key-a")
    assert got.response["id"] == "resp_1" and got.conversation[0]["content"] == "hello from resp_1"
    with pytest.raises(NotFound, match="resp_1"):
        store.get("resp_1", "key-b")  # another key's: as unknown as a missing one
    assert store.get("resp_2", None).id == "resp_2"  # no keys configured: one tenant
    time.sleep(0.01)
    save(store, "resp_3", "key-a")
    assert store.count() == 2  # max_stored_responses: the oldest went
    with pytest.raises(NotFound):
        store.get("resp_1", "key-a")
    with pytest.raises(NotFound):
        store.delete("resp_3", "key-b")
    store.delete("resp_3", "key-a")
    assert store.count() == 1


def test_responses_past_their_ttl_are_dropped(database_url: str) -> None:
    store = ResponseStore(open_database(database_url, Path("unused")), Limits(stored_response_ttl_s=1))
    save(store, "resp_old", None)
    time.sleep(1.1)
    save(store, "resp_new", None)
    assert store.count() == 1 and store.get("resp_new", None).id == "resp_new"
    store.close()
