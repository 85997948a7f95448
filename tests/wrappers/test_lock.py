"""The fingerprint lock: a built-in whose content changes must bump its version."""

from __future__ import annotations

from pathlib import Path

import pytest

from wrappers.catalogue import BUILTINS
from wrappers.catalogue.classify import SentimentFirstRelease as Sentiment
from wrappers.lock import LOCK_PATH, compute_lock, lock_problems, read_lock, write_lock


def test_every_builtin_matches_the_checked_in_lock() -> None:
    problems = lock_problems(BUILTINS, read_lock(LOCK_PATH))
    assert not problems, "\n".join(problems)


def test_the_lock_lists_exactly_the_builtins() -> None:
    assert set(read_lock(LOCK_PATH)) == {wrapper.ref() for wrapper in BUILTINS}


def test_a_changed_instruction_without_a_version_bump_is_reported() -> None:
    class Reworded(Sentiment):
        instructions = Sentiment.instructions + " Be strict."

    assert Reworded.ref() == Sentiment.ref() and Reworded.fingerprint() != Sentiment.fingerprint()
    problems = lock_problems([Reworded], read_lock(LOCK_PATH))
    assert len(problems) == 1
    assert "sentiment@1.0.0 changed" in problems[0] and "bump the version" in problems[0]


def test_a_bumped_version_is_reported_as_missing_until_locked(tmp_path: Path) -> None:
    class Bumped(Sentiment):
        version = "1.9.0"
        instructions = Sentiment.instructions + " Be strict."

    lock_file = tmp_path / "lock.json"
    lock_file.write_text(LOCK_PATH.read_text())
    assert lock_problems([Bumped], read_lock(lock_file)) == [
        "sentiment@1.9.0 is not in the lock; run `python -m wrappers.lock` to add it"
    ]
    write_lock([*BUILTINS, Bumped], lock_file)
    assert lock_problems([*BUILTINS, Bumped], read_lock(lock_file)) == []


def test_regenerating_refuses_to_overwrite_a_changed_fingerprint(tmp_path: Path) -> None:
    class Reworded(Sentiment):
        instructions = Sentiment.instructions + " Be strict."

    lock_file = tmp_path / "lock.json"
    write_lock(BUILTINS, lock_file)
    with pytest.raises(ValueError, match="bump the version"):
        write_lock([Reworded], lock_file)
    assert read_lock(lock_file) == compute_lock(BUILTINS)
    write_lock([Reworded], lock_file, force=True)
    assert read_lock(lock_file) == {"sentiment@1.0.0": Reworded.fingerprint()}
