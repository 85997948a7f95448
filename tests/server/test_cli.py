"""Bad configuration ends with one clear line, not a traceback."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, server_env


def run_serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", *args],
        cwd=REPO,
        env=server_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    for phrase in phrases:
        assert phrase in error_lines[0]


def test_unknown_model(tmp_path: Path) -> None:
    assert_one_clear_line(
        run_serve(tmp_path, "--model", "nope"), "unknown model 'nope'", "smollm2-135m-instruct"
    )


def test_missing_weights(tmp_path: Path) -> None:
    result = run_serve(tmp_path, "--model", "llama-3.1-8b-instruct")
    assert_one_clear_line(result, "weights for model 'llama-3.1-8b-instruct' not found", "config.json")


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_serve(tmp_path, "--port", str(port))
    assert_one_clear_line(result, f"port {port}", "already in use")


def test_invalid_setting_value(tmp_path: Path) -> None:
    assert_one_clear_line(run_serve(tmp_path, "--port", "70000"), "invalid configuration", "port")


def test_too_little_memory_for_the_kv_cache(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--port", "0"],
        cwd=REPO,
        env=server_env(tmp_path, WRAPSERVE_KV_CACHE_GIB="10000"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert_one_clear_line(result, "not enough memory", "WRAPSERVE_KV_CACHE_GIB", "engine log:")
    assert (tmp_path / "logs" / "engine.log").is_file()


def test_models_list_shows_presence_and_size(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "models", "list"],
        cwd=REPO,
        env={**server_env(tmp_path), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") > 3}
    default = rows["smollm2-135m-instruct (default)"]
    assert "yes" in default and re.search(r"\d+(\.\d+)? (GB|MB)", default)
    assert "no" in rows["qwen2.5-7b-instruct"]


def test_a_bad_releases_file_stops_the_start(tmp_path: Path) -> None:
    releases = tmp_path / "releases.toml"
    releases.write_text('[sentiment.channels]\nstable = { version = "9.0.0" }\n')
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--port", "0"],
        cwd=REPO,
        env=server_env(tmp_path, WRAPSERVE_RELEASES_FILE=str(releases)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_clear_line(result, "releases: sentiment channel 'stable' names version '9.0.0'", "not served")
