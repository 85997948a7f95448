"""Session fixtures: the real server (real vLLM on this machine, real model), started once."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
# User wrappers the session server loads (WRAPSERVE_WRAPPERS_DIR); the README shows one of them.
USER_WRAPPERS = REPO / "tests" / "fixtures" / "user_wrappers"
STARTUP_TIMEOUT_S = 900
_POLLING = re.compile(r'"message": "GET /(health|metrics) ')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def has_gpu() -> bool:
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if has_gpu():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that used a server shows that server's last log lines: CI keeps
    only the pytest output, and the log is where an engine crash or an abort shows."""
    report = yield
    if report.failed and call.when == "call":
        for name, value in getattr(item, "funcargs", {}).items():
            if isinstance(value, RunningServer):
                report.sections.append((f"server log of fixture {name!r} (last lines)", value.log_tail()))
    return report


@dataclass
class RunningServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    home: Path
    health_seen: list[int] = field(default_factory=list)  # /health statuses while waiting

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        """The server log's last lines (less the health and metrics polling that tests do),
        then the engine log's (vLLM's own output, where an engine crash shows)."""
        kept = [line for line in self.log().splitlines() if not _POLLING.search(line)]
        engine_log = self.home / "logs" / "engine.log"
        engine = engine_log.read_text(errors="replace").splitlines() if engine_log.exists() else []
        return "\n".join([*kept[-lines:], f"--- {engine_log}", *engine[-lines:]])


def server_env(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # State goes to a fresh folder; converted weights are shared with `make model`.
    env.setdefault("WRAPSERVE_WEIGHTS_DIR", str(Path.home() / ".cache" / "wrapserve" / "models"))
    # Tests need little KV cache (1 GiB is ~47k tokens); leave the rest to other processes.
    env.setdefault("WRAPSERVE_KV_CACHE_GIB", "1")
    env.update({"WRAPSERVE_HOME": str(home), "PYTHONUNBUFFERED": "1", **extra})
    return env


def start_server(home: Path, port: int, **extra_env: str) -> RunningServer:
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
            cwd=REPO,
            env=server_env(home, **extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningServer(f"http://127.0.0.1:{port}", process, log_path, home)


def wait_ready(server: RunningServer, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log()[-4000:]}")
        try:
            status = httpx.get(f"{server.base_url}/health", timeout=5).status_code
            server.health_seen.append(status)
            if status == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"server not ready after {timeout_s}s:\n{server.log()[-4000:]}")


def stop_server(server: RunningServer, timeout_s: float = 60) -> int:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
    return server.process.returncode


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One real server for the whole session: the engine starts once."""
    home = tmp_path_factory.mktemp("wrapserve-home")
    running = start_server(
        home,
        free_port(),
        WRAPSERVE_WRAPPERS_DIR=str(USER_WRAPPERS),
        # absent until tests/server/test_releases.py writes it (then SIGHUP)
        WRAPSERVE_RELEASES_FILE=str(home / "releases.toml"),
    )
    try:
        wait_ready(running)
        yield running
    finally:
        stop_server(running)


@pytest.fixture(scope="session")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=300) as client:
        yield client


# -- the databases durable state can live in ---------------------------------------------

POSTGRES_URL_ENV = "WRAPSERVE_TEST_DATABASE_URL"  # scripts/postgres.sh starts one and prints it
STORE_TABLES = ("batch_items", "batches", "files", "responses")


def postgres_url() -> str:
    """The test PostgreSQL's URL; the test skips without one, or fails where CI requires it."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if url:
        return url
    reason = f"no PostgreSQL for the shared-store tests: set {POSTGRES_URL_ENV} (scripts/postgres.sh)"
    if os.environ.get("WRAPSERVE_TEST_REQUIRE_POSTGRES"):
        pytest.fail(reason)
    pytest.skip(reason)


def fresh_postgres() -> str:
    """The test PostgreSQL, its store tables dropped: each test starts from an empty store."""
    from server.storage.database import open_database

    url = postgres_url()
    database = open_database(url, Path("unused"))
    database.execute(f"DROP TABLE IF EXISTS {', '.join(STORE_TABLES)} CASCADE")
    database.close()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on both backends: a fresh SQLite file, and the test PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite3'}"
    return fresh_postgres()
