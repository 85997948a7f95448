"""``wrapserve eval`` against the session server, and the eval history in SQLite."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, RunningServer, server_env
from wrappers.catalogue.classify import Sentiment
from wrappers.evals.run import EvalReport, _compare
from wrappers.evals.store import EvalStore, StoredCase


def wrapserve(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=REPO,
        env=server_env(home, COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=600,
    )


def runs(home: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(home / "wrapserve.sqlite3") as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM eval_runs ORDER BY id").fetchall()


def test_eval_prints_pass_rates_stores_them_and_compares_the_next_run(
    server: RunningServer, tmp_path: Path
) -> None:
    first = wrapserve(tmp_path, "eval", Sentiment.ref(), "--url", server.base_url)
    assert first.returncode == 0, first.stderr
    assert Sentiment.ref() in first.stdout and "pass rate" in first.stdout
    assert "first run" in first.stdout

    [run] = runs(tmp_path)
    assert (run["wrapper"], run["version"], run["model"]) == (
        "sentiment",
        Sentiment.version,
        "smollm2-135m-instruct",
    )
    assert run["fingerprint"] == Sentiment.fingerprint()
    assert run["cases"] == len(Sentiment.examples)
    assert 0 <= run["passed"] <= run["valid"] <= run["cases"]
    assert f"{run['passed'] / run['cases']:.1%}" in first.stdout
    with sqlite3.connect(tmp_path / "wrapserve.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cases = db.execute(
            "SELECT valid, passed, output FROM eval_cases WHERE run_id = ?", (run["id"],)
        ).fetchall()
    assert len(cases) == run["cases"]
    assert sum(passed for _, passed, _ in cases) == run["passed"]
    assert all(output is not None for valid, _, output in cases if valid)

    second = wrapserve(tmp_path, "eval", "sentiment@1", "--url", server.base_url)
    assert second.returncode == 0, second.stderr
    assert len(runs(tmp_path)) == 2
    assert f"vs run #{run['id']}" in second.stdout
    assert " pp " in second.stdout


def test_eval_of_a_user_wrapper_compares_its_versions(server: RunningServer, tmp_path: Path) -> None:
    result = wrapserve(tmp_path, "eval", "ticket-priority", "--url", server.base_url)
    assert result.returncode == 0, result.stderr
    old, new = runs(tmp_path)
    assert (old["version"], new["version"]) == ("1.0.0", "2.0.0")
    assert "ticket-priority@1.0.0" in result.stdout
    assert f"vs ticket-priority@1.0.0 run #{old['id']}" in result.stdout


def test_eval_of_an_unknown_wrapper_is_one_error_line(server: RunningServer, tmp_path: Path) -> None:
    result = wrapserve(tmp_path, "eval", "no-such-wrapper", "--url", server.base_url)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "wrapper_not_found" in line


def case(index: int, passed: bool, text: str = "t") -> StoredCase:
    output = {"label": "positive" if passed else "negative"}
    return StoredCase(index, {"text": text}, output, None, () if passed else ("label: wrong",), True, passed)


def test_baseline_is_the_same_version_on_any_model_else_the_previous_version(tmp_path: Path) -> None:
    store = EvalStore(tmp_path / "state.sqlite3")

    def add(version: str, model: str, cases: list[StoredCase]):  # type: ignore[no-untyped-def]
        return store.add_run(
            created_at="2026-01-01T00:00:00+00:00",
            model=model,
            wrapper="w",
            version=version,
            fingerprint=f"sha256:{version}",
            server_url="http://x",
            cases=cases,
        )

    v1_small = add("1.0.0", "small", [case(0, True, "a"), case(1, False, "b")])
    v1_big = add("1.0.0", "big", [case(0, False, "a"), case(1, True, "b")])
    v2 = add("2.0.0", "big", [case(0, True, "a")])
    assert store.baseline(v1_small) is None
    assert store.baseline(v1_big) == v1_small  # same wrapper@version, other model
    assert store.baseline(v2) == v1_big  # no earlier 2.x run: the previous version's latest

    report: EvalReport = _compare(store, v1_big, store.cases(v1_big.id))
    assert [c.input for c in report.regressed] == [{"text": "a"}]
    assert [c.input for c in report.fixed] == [{"text": "b"}]
