"""``wrapserve wrappers list`` (local, no server) and ``wrapserve call`` (against the session server)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, USER_WRAPPERS, RunningServer, server_env
from wrappers.catalogue import BUILTINS


def wrapserve(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=REPO,
        env=server_env(home, COLUMNS="250", **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_wrappers_list_shows_the_catalogue_and_the_users_folder(tmp_path: Path) -> None:
    result = wrapserve(tmp_path, "wrappers", "list", WRAPSERVE_WRAPPERS_DIR=str(USER_WRAPPERS))
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") > 2}
    assert {wrapper.name for wrapper in BUILTINS} | {"ticket-priority"} <= set(rows)
    assert "2.0.0, 1.0.0" in rows["ticket-priority"] and "yours" in rows["ticket-priority"]
    assert "classify" in rows["sentiment"] and "catalogue" in rows["sentiment"]


def test_wrappers_list_with_a_missing_folder_is_one_error_line(tmp_path: Path) -> None:
    result = wrapserve(tmp_path, "wrappers", "list", "--wrappers-dir", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and "does not exist" in result.stderr


def test_call_prints_the_output_json(server: RunningServer, tmp_path: Path) -> None:
    result = wrapserve(
        tmp_path, "call", "sentiment", "--input", '{"text": "I love it!"}', "--url", server.base_url
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["label"] in {"positive", "negative", "neutral"}

    full = wrapserve(
        tmp_path,
        "call",
        "ticket-priority",
        "--version",
        "1",
        "--full",
        "--input",
        '{"text": "Site down"}',
        "--url",
        server.base_url,
    )
    assert full.returncode == 0, full.stderr
    body = json.loads(full.stdout)
    assert (body["wrapper"], body["version"]) == ("ticket-priority", "1.0.0")
    assert body["output"]["priority"] in {"low", "normal", "urgent"}


def test_call_errors_are_one_line_and_non_zero(server: RunningServer, tmp_path: Path) -> None:
    invalid = wrapserve(tmp_path, "call", "sentiment", "--input", '{"text": ""}', "--url", server.base_url)
    assert invalid.returncode == 1 and "Traceback" not in invalid.stderr
    assert invalid.stderr.startswith("error:") and "422 invalid_input" in invalid.stderr
    assert len(invalid.stderr.strip().splitlines()) == 1

    not_json = wrapserve(tmp_path, "call", "sentiment", "--input", "{text", "--url", server.base_url)
    assert not_json.returncode == 2 and "--input is not JSON" in not_json.stderr

    unreachable = wrapserve(tmp_path, "call", "sentiment", "--input", "{}", "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == 1 and "cannot reach the server" in unreachable.stderr
