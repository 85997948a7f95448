"""``wrapserve serve``'s HTTP side: bind, run the app under uvicorn, and the API worker entry.

One process (the default) starts its own engine and serves; with ``--api-workers N`` this
process starts the engine core and N workers (``server/vllm/api_workers.py``), and each
worker runs ``run_http`` on the shared socket, connected to that engine core.
"""

from __future__ import annotations

import errno
import logging
import socket
from pathlib import Path
from typing import Any

from models.manifest import ModelManifest
from server.cli.common import fail
from server.settings import Settings
from wrappers.errors import WrapserveError

__all__ = ["api_worker", "bind", "run_http", "run_workers"]

log = logging.getLogger("wrapserve")


def bind(host: str, port: int) -> socket.socket:
    """Bind before starting anything slow, so a busy port fails in a second, clearly."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            fail(
                f"port {port} on {host} is already in use; stop the other server or pass --port / WRAPSERVE_PORT"
            )
        fail(f"cannot listen on {host}:{port}: {error.strerror}")
    sock.listen(2048)
    return sock


def run_http(
    settings: Settings,
    manifest: ModelManifest,
    weights: Path,
    sock: socket.socket,
    *,
    engine_log_offset: int = 0,
    client: dict[str, Any] | None = None,
) -> None:
    """Serve the app on ``sock`` until a signal or a fatal engine error; ``client``: a worker's
    connection to an engine core that is already running."""
    import uvicorn

    from server.app import create_app
    from server.http.connections import uvicorn_config
    from server.vllm.args import explain_start_failure
    from server.vllm.engine import VllmEngine
    from server.vllm.engine_log import engine_failure_cause

    async def start_engine() -> VllmEngine:
        return await VllmEngine.start(settings, manifest, weights, client)

    try:
        application = create_app(settings, manifest, start_engine)
    except WrapserveError as error:
        sock.close()
        fail(error.message)
    config = uvicorn_config(
        application,
        settings.limits,
        log_config=None,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        access_log=False,
    )
    server = uvicorn.Server(config)
    state = application.state.wrapserve

    def stop() -> None:
        server.should_exit = True

    stop_on_signal = server.handle_exit

    def drain_on_signal(sig: int, frame: Any) -> None:
        # SIGTERM/SIGINT: /health says 503 and batch jobs stop taking lines, while uvicorn
        # stops accepting and waits for in-flight requests (timeout_graceful_shutdown).
        if state.lifecycle.drain():
            # What is being waited for, so an operator (and a test) sees it at once.
            log.info(
                "draining: %d engine request(s) in flight, waiting up to %d s for them",
                state.admission.requests,
                settings.shutdown_timeout_s,
            )
        stop_on_signal(sig, frame)

    server.handle_exit = drain_on_signal  # type: ignore[method-assign]

    state.lifecycle.when_fatal(stop)
    if client is None:
        log.info(
            "listening on http://%s:%d (model %s, engine starting)",
            settings.host,
            sock.getsockname()[1],
            manifest.id,
        )
        engine_log = settings.engine_log_path
        if engine_log:
            log.info("engine (vLLM) output goes to %s", engine_log)
    server.run(sockets=[sock])
    if state.phase == "failed":
        # A worker's engine output was not diverted: the log file holds nothing of this run.
        engine_log = settings.engine_log_path if client is None else None
        cause = engine_failure_cause(engine_log, engine_log_offset) if engine_log else None
        message = explain_start_failure(cause) if cause else (state.failure or "the engine failed to start")
        fail(message + (f" (engine log: {engine_log})" if engine_log else ""), code=1)


def run_workers(settings: Settings, manifest: ModelManifest, weights: Path, sock: socket.socket) -> None:
    """The engine core here, ``settings.api_workers`` HTTP workers beside it."""
    from server.vllm.api_workers import run_api_workers

    log.info(
        "listening on http://%s:%d (model %s, %d API workers, engine starting)",
        settings.host,
        sock.getsockname()[1],
        manifest.id,
        settings.api_workers,
    )
    try:
        run_api_workers(settings, manifest, weights, sock, api_worker)
    except SystemExit:
        pass  # SIGTERM/SIGINT: the workers drained and the engine stopped
    except Exception as error:  # the engine core or a worker failed; vLLM says which
        from server.vllm.args import explain_start_failure

        text = " ".join((str(error) or type(error).__name__).split())
        message = explain_start_failure(text)  # says what to change when memory ran out
        if message.startswith("the engine failed to start"):
            message = f"the engine or an API worker stopped: {text}"
        fail(message, code=1)


def api_worker(listen_address: str, sock: socket.socket, args: Any, client: dict[str, Any]) -> None:
    """One API worker process (spawned by vLLM's APIServerProcessManager)."""
    import signal

    from server.http.logs import configure_logging

    # A reload (SIGHUP, passed on by the main process) must not end a worker still starting;
    # the app's lifespan installs the real handler once the releases can be reloaded.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from server.vllm.api_workers import name_worker_process

    settings = args.settings.for_api_worker(int(client["client_index"]))
    name_worker_process(settings.api_worker_index)
    configure_logging(settings)
    run_http(settings, args.manifest, args.weights, sock, client=client)
