"""Eval results in SQLite (stdlib sqlite3, WAL): one row per run of a wrapper@version, one per case.

Kept apart from the eval logic so the history can be read (and compared) without a
server, and so other state in the same file (batch jobs) never mixes with it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["EvalStore", "StoredCase", "StoredRun", "canonical"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS eval_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    model TEXT NOT NULL,
    wrapper TEXT NOT NULL,
    version TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    server_url TEXT NOT NULL,
    cases INTEGER NOT NULL,
    valid INTEGER NOT NULL,
    passed INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS eval_runs_by_wrapper ON eval_runs (wrapper, version, id);
CREATE TABLE IF NOT EXISTS eval_cases (
    run_id INTEGER NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
    case_index INTEGER NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    failures TEXT NOT NULL,
    valid INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    PRIMARY KEY (run_id, case_index)
);
"""


def canonical(value: Any) -> str:
    """One JSON text per value, so the same case input matches across runs."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@dataclass(frozen=True)
class StoredCase:
    index: int
    input: dict[str, Any]
    output: dict[str, Any] | None
    error: str | None
    failures: tuple[str, ...]
    valid: bool
    passed: bool


@dataclass(frozen=True)
class StoredRun:
    id: int
    created_at: str
    model: str
    wrapper: str
    version: str
    fingerprint: str
    server_url: str
    cases: int
    valid: int
    passed: int

    @property
    def ref(self) -> str:
        return f"{self.wrapper}@{self.version}"

    @property
    def pass_rate(self) -> float:
        return self.passed / self.cases if self.cases else 0.0


class EvalStore:
    """The eval tables of the state database; opened per use, safe beside a running server."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            with db:
                yield db
        finally:
            db.close()

    def add_run(
        self,
        *,
        created_at: str,
        model: str,
        wrapper: str,
        version: str,
        fingerprint: str,
        server_url: str,
        cases: Sequence[StoredCase],
    ) -> StoredRun:
        """Store one run and its cases in one transaction."""
        valid = sum(case.valid for case in cases)
        passed = sum(case.passed for case in cases)
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO eval_runs (created_at, model, wrapper, version, fingerprint, server_url,"
                " cases, valid, passed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (created_at, model, wrapper, version, fingerprint, server_url, len(cases), valid, passed),
            )
            run_id = int(cursor.lastrowid or 0)
            db.executemany(
                "INSERT INTO eval_cases (run_id, case_index, input, output, error, failures, valid, passed)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        case.index,
                        canonical(case.input),
                        None if case.output is None else canonical(case.output),
                        case.error,
                        json.dumps(list(case.failures)),
                        int(case.valid),
                        int(case.passed),
                    )
                    for case in cases
                ],
            )
        return StoredRun(
            run_id, created_at, model, wrapper, version, fingerprint, server_url, len(cases), valid, passed
        )

    def runs(self, wrapper: str | None = None) -> list[StoredRun]:
        """Every stored run (of ``wrapper``), oldest first."""
        query = "SELECT * FROM eval_runs" + (" WHERE wrapper = ?" if wrapper else "") + " ORDER BY id"
        with self._connect() as db:
            rows = db.execute(query, (wrapper,) if wrapper else ()).fetchall()
        return [StoredRun(**dict(row)) for row in rows]

    def cases(self, run_id: int) -> list[StoredCase]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM eval_cases WHERE run_id = ? ORDER BY case_index", (run_id,)
            ).fetchall()
        return [
            StoredCase(
                index=row["case_index"],
                input=json.loads(row["input"]),
                output=None if row["output"] is None else json.loads(row["output"]),
                error=row["error"],
                failures=tuple(json.loads(row["failures"])),
                valid=bool(row["valid"]),
                passed=bool(row["passed"]),
            )
            for row in rows
        ]

    def baseline(self, run: StoredRun) -> StoredRun | None:
        """What ``run`` is compared with: the latest earlier run of the same wrapper@version
        (on any model), else the latest run of the nearest earlier version."""
        earlier = [other for other in self.runs(run.wrapper) if other.id < run.id]
        same = [other for other in earlier if other.version == run.version]
        if same:
            return same[-1]
        older = [other for other in earlier if _version_key(other.version) < _version_key(run.version)]
        if not older:
            return None
        nearest = max(_version_key(other.version) for other in older)
        return [other for other in older if _version_key(other.version) == nearest][-1]
