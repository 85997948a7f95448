"""Several API processes on one engine core, with vLLM's own multi-API-server mechanism.

This process starts the engine core (``launch_core_engines``) and N API worker processes
(``APIServerProcessManager``, as ``vllm serve --api-server-count N`` does); each worker
runs the whole Wrapserve app on the shared listening socket, and its ``AsyncLLM``
connects to the engine core over vLLM's ZMQ sockets instead of starting one. The engine
core sees every worker's requests and schedules them as one continuous batch, while the
API work (parsing, validation, rendering, tokenizing, detokenizing, encoding) of N calls
runs on N cores. Metrics go through prometheus-client's multiprocess mode so that one
``/metrics`` adds the workers up (``server/http/metrics.py``). SIGHUP (reload the
releases) is passed on to every worker; SIGTERM drains them, then stops the engine.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.manifest import ModelManifest
from server.settings import Settings
from server.vllm.args import detect_device, engine_args, engine_environment

__all__ = ["WorkerTarget", "name_worker_process", "run_api_workers"]

log = logging.getLogger("wrapserve")
SHUTDOWN_MARGIN_S = 15.0  # after the drain: each worker's own cleanup (batch runner, engine client)

# (listen address, socket, our arguments, vLLM's client addresses) -> runs one worker
WorkerTarget = Callable[[str, socket.socket, Any, dict[str, Any]], None]


def run_api_workers(
    settings: Settings, manifest: ModelManifest, weights: Path, sock: socket.socket, target: WorkerTarget
) -> None:
    """Start the engine core and ``settings.api_workers`` workers; return when they end."""
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine.utils import bind_engine_zmq_listeners, launch_core_engines
    from vllm.v1.executor import Executor
    from vllm.v1.metrics.prometheus import setup_multiprocess_prometheus
    from vllm.v1.utils import APIServerProcessManager, wait_for_completion_or_failure

    workers = settings.api_workers
    os.environ.update(engine_environment(settings, os.environ))  # read by vLLM's processes
    setup_multiprocess_prometheus()  # a fresh PROMETHEUS_MULTIPROC_DIR, inherited by the workers
    args = engine_args(settings, manifest, weights, detect_device(settings.device))
    args._api_process_count, args._api_process_rank = workers, -1
    config = args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)
    listeners = bind_engine_zmq_listeners(config, workers)
    host, port = sock.getsockname()[:2]
    manager: Any = None
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise SystemExit  # unwinds into the finally below, which drains the workers

    def reload(signum: int, frame: Any) -> None:
        for process in manager.processes if manager is not None else []:
            if process.pid is not None and process.is_alive():
                with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                    os.kill(process.pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    engine_manager: Any = None
    coordinator: Any = None
    try:
        with launch_core_engines(
            config, Executor.get_class(config), not args.disable_log_stats, listeners.addresses
        ) as launch:
            engine_manager, coordinator = launch.engine_manager, launch.coordinator
            manager = APIServerProcessManager(
                listen_address=f"http://{host}:{port}",
                sock=sock,
                # What each worker needs, passed as vLLM passes its own CLI arguments.
                args=argparse.Namespace(settings=settings, manifest=manifest, weights=weights),
                num_servers=workers,
                input_listeners=listeners.inputs,
                output_listeners=listeners.outputs,
                target_server_fn=target,
                stats_update_address=coordinator.get_stats_publish_address() if coordinator else None,
                tensor_queue=launch.tensor_queue,
            )
            launch.watched_frontend_processes = manager.processes
        log.info("engine core ready; %d API workers on http://%s:%d", workers, host, port)
        wait_for_completion_or_failure(
            api_server_manager=manager, engine_manager=engine_manager, coordinator=coordinator
        )
    finally:
        stopping = True  # a second SIGTERM must not cut the shutdown short
        # Each worker drains its calls (up to the shutdown timeout), then runs its cleanup.
        timeout = float(settings.shutdown_timeout_s) + SHUTDOWN_MARGIN_S
        if manager is not None:
            manager.shutdown(timeout=timeout)
        if engine_manager is not None:
            engine_manager.shutdown(timeout=timeout)
        if coordinator is not None:
            coordinator.shutdown(timeout=timeout)


def name_worker_process(index: int) -> None:
    """``VLLM::APIServer_N`` in ps and top, as vLLM names its own API workers."""
    from vllm.utils.system_utils import set_process_title

    set_process_title("APIServer", str(index))
