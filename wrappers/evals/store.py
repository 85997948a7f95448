"""Eval results in SQLite (stdlib sqlite3, WAL): one row per run of a wrapper@version, one per case.

Kept apart from the eval logic so the history can be read (and compared) without a
server, and so other state in the same file (batch jobs) never mixes with it. A run
records what it ran on (model, fingerprint, the dataset's name and SHA-256), its kind
(``golden`` examples, a ``dataset``, a ``stability`` run), its task metrics and, where
fitted, its calibration; databases from before those columns are upgraded in place.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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
    passed INTEGER NOT NULL,
    kind TEXT NOT NULL DEFAULT 'golden',
    dataset TEXT NOT NULL DEFAULT 'golden',
    dataset_hash TEXT NOT NULL DEFAULT '',
    metrics TEXT NOT NULL DEFAULT '{}',
    calibration TEXT
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
    scores TEXT,
    PRIMARY KEY (run_id, case_index)
);
"""

# Columns added after the first release, with their definitions, for ALTER TABLE on old files.
_ADDED = {
    "eval_runs": {
        "kind": "TEXT NOT NULL DEFAULT 'golden'",
        "dataset": "TEXT NOT NULL DEFAULT 'golden'",
        "dataset_hash": "TEXT NOT NULL DEFAULT ''",
        "metrics": "TEXT NOT NULL DEFAULT '{}'",
        "calibration": "TEXT",
    },
    "eval_cases": {"scores": "TEXT"},
}

RunKind = Literal["golden", "dataset", "stability"]


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
    scores: dict[str, float] | None = None  # label -> probability, for scored choices


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
    kind: RunKind = "golden"
    dataset: str = "golden"
    dataset_hash: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None

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
            for table, columns in _ADDED.items():
                present = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
                for name, definition in columns.items():
                    if name not in present:
                        try:
                            db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")
                        except sqlite3.OperationalError as error:
                            # "duplicate column": another process upgraded it first, which is fine
                            if "duplicate column" not in str(error):
                                raise

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
        kind: RunKind = "golden",
        dataset: str = "golden",
        dataset_hash: str = "",
        metrics: dict[str, Any] | None = None,
        calibration: dict[str, Any] | None = None,
    ) -> StoredRun:
        """Store one run and its cases in one transaction."""
        valid = sum(case.valid for case in cases)
        passed = sum(case.passed for case in cases)
        metrics = metrics or {}
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO eval_runs (created_at, model, wrapper, version, fingerprint, server_url,"
                " cases, valid, passed, kind, dataset, dataset_hash, metrics, calibration)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    created_at,
                    model,
                    wrapper,
                    version,
                    fingerprint,
                    server_url,
                    len(cases),
                    valid,
                    passed,
                    kind,
                    dataset,
                    dataset_hash,
                    json.dumps(metrics),
                    None if calibration is None else json.dumps(calibration),
                ),
            )
            run_id = int(cursor.lastrowid or 0)
            db.executemany(
                "INSERT INTO eval_cases (run_id, case_index, input, output, error, failures, valid,"
                " passed, scores) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                        None if case.scores is None else json.dumps(case.scores),
                    )
                    for case in cases
                ],
            )
        return StoredRun(
            run_id,
            created_at,
            model,
            wrapper,
            version,
            fingerprint,
            server_url,
            len(cases),
            valid,
            passed,
            kind,
            dataset,
            dataset_hash,
            metrics,
            calibration,
        )

    def runs(self, wrapper: str | None = None) -> list[StoredRun]:
        """Every stored run (of ``wrapper``), oldest first."""
        query = "SELECT * FROM eval_runs" + (" WHERE wrapper = ?" if wrapper else "") + " ORDER BY id"
        with self._connect() as db:
            rows = db.execute(query, (wrapper,) if wrapper else ()).fetchall()
        return [_run(row) for row in rows]

    def run(self, run_id: int) -> StoredRun | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM eval_runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else _run(row)

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
                scores=None if row["scores"] is None else json.loads(row["scores"]),
            )
            for row in rows
        ]

    def baseline(self, run: StoredRun) -> StoredRun | None:
        """What ``run`` is compared with: the latest earlier run of the same kind of the same
        wrapper@version (on any model), else the latest such run of the nearest earlier
        version. Dataset runs compare only on the same cases (dataset hash); golden runs
        compare case by case, since each version carries its own examples."""
        earlier = [
            other
            for other in self.runs(run.wrapper)
            if other.id < run.id
            and other.kind == run.kind
            and (run.kind == "golden" or other.dataset_hash == run.dataset_hash)
        ]
        same = [other for other in earlier if other.version == run.version]
        if same:
            return same[-1]
        older = [other for other in earlier if _version_key(other.version) < _version_key(run.version)]
        if not older:
            return None
        nearest = max(_version_key(other.version) for other in older)
        return [other for other in older if _version_key(other.version) == nearest][-1]


def _run(row: sqlite3.Row) -> StoredRun:
    values = dict(row)
    values["metrics"] = json.loads(values["metrics"])
    values["calibration"] = None if values["calibration"] is None else json.loads(values["calibration"])
    return StoredRun(**values)
