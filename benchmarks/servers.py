"""Start and stop the two servers under test, and time their start-up.

Both come from the same virtualenv (``sys.executable``), load the same model folder and use
the same structured-output backend. Each runs in its own process group so stopping it
stops vLLM's worker processes too; ``Servers`` stops everything it started on exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
import psutil

__all__ = ["ServerConfig", "Servers", "StartedServer", "free_port"]

REPO = Path(__file__).resolve().parent.parent


class ServerFailed(RuntimeError):
    """A server exited or did not become healthy in time."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ServerConfig:
    """What both servers share: model, engine options, grammar backend."""

    model_id: str = "smollm2-135m-instruct"
    weights_dir: Path = Path.home() / ".cache" / "wrapserve" / "models"
    max_model_len: int = 8192
    # Both servers run this dtype (the bench passes what Wrapserve would pick by default:
    # bf16 on GPUs and on CPUs with hardware bf16, else fp32; server/vllm/dtype.py).
    dtype: str = "float32"
    memory_fraction: float = 0.15  # on CPU: share of NUMA node 0's RAM for weights + KV cache
    enforce_eager: bool = True
    backend: str = "guidance"
    load_format: str = "auto"
    # KV cache block size (both servers); None: vLLM's default (128 on CPU, 16 on GPU).
    block_size: int | None = None
    # An explicit KV cache size (both servers): vLLM's CPU backend otherwise sizes it from
    # the node's free RAM, which on a shared box changes from one start to the next.
    kv_cache_gib: float | None = 1.0
    # VLLM_CPU_OMP_THREADS_BIND for both engines ("auto": vLLM's choice, core 0 on a 2-core box).
    cpu_bind: str = "auto"
    startup_timeout_s: float = 900
    vllm_fast_cpu_masks: bool = False  # give vLLM's server Wrapserve's CPU grammar-mask plugin too
    vllm_fast_grammar_advance: bool = False  # and Wrapserve's outlines-advance plugin
    # vLLM gives up building a grammar index after 5 s by default; on a loaded 2-core box
    # the report grammar (~1.2 s idle) can exceed that. Both servers get the same budget.
    extra_env: dict[str, str] = field(default_factory=lambda: {"VLLM_REGEX_COMPILATION_TIMEOUT_S": "60"})

    @property
    def model_dir(self) -> Path:
        return self.weights_dir / self.model_id

    @classmethod
    def cpu_defaults(cls) -> ServerConfig:
        """What Wrapserve runs on a CPU by default, as ``benchmarks.run`` passes it."""
        from server.vllm.args import CPU_BLOCK_SIZE
        from server.vllm.dtype import cpu_has_native_bf16

        return cls(
            model_id="smollm2-135m-instruct",
            block_size=CPU_BLOCK_SIZE,
            dtype="bfloat16" if cpu_has_native_bf16() else "float32",
            kv_cache_gib=1.0,
        )


@dataclass
class StartedServer:
    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    startup_s: float = 0.0

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by the server's own process, which serves the
        API, and by every process it started (vLLM's engine core and workers): what a run
        spends where, whatever the machine's other load."""
        api = psutil.Process(self.process.pid)
        engine = 0.0
        for child in api.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                times = child.cpu_times()
                engine += times.user + times.system
        times = api.cpu_times()
        return {"api": times.user + times.system, "engine": engine}

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _launch(name: str, command: list[str], env: dict[str, str], log_path: Path, port: int) -> StartedServer:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return StartedServer(name, f"http://127.0.0.1:{port}", process, log_path)


def _wait_healthy(server: StartedServer, started: float, timeout_s: float) -> None:
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerFailed(f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.base_url}/health", timeout=5).status_code == 200:
                server.startup_s = time.monotonic() - started
                return
        time.sleep(0.5)
    raise ServerFailed(f"{server.name} not healthy after {timeout_s:.0f}s:\n{server.log_tail()}")


def _stop(server: StartedServer, timeout_s: float = 60) -> None:
    if server.process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()


class Servers:
    """Context manager owning every server the run starts; all are stopped on exit."""

    def __init__(self, config: ServerConfig, work_dir: Path) -> None:
        self.config = config
        self.work_dir = work_dir
        self._running: list[StartedServer] = []

    def __enter__(self) -> Servers:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        while self._running:
            _stop(self._running.pop())

    def stop(self, server: StartedServer) -> None:
        _stop(server)
        if server in self._running:
            self._running.remove(server)

    def _start(self, name: str, command: list[str], env: dict[str, str], port: int) -> StartedServer:
        started = time.monotonic()
        server = _launch(name, command, env, self.work_dir / f"{name}.log", port)
        self._running.append(server)
        _wait_healthy(server, started, self.config.startup_timeout_s)
        return server

    def start_wrapserve(self, name: str = "wrapserve", **env_overrides: str) -> StartedServer:
        """``wrapserve serve``; healthy means the engine is up and every static grammar is warm."""
        config, port = self.config, free_port()
        env = {
            **os.environ,
            "WRAPSERVE_HOME": str(self.work_dir / f"{name}-home"),
            "WRAPSERVE_WEIGHTS_DIR": str(config.weights_dir),
            "WRAPSERVE_MODEL": config.model_id,
            "WRAPSERVE_MAX_MODEL_LEN": str(config.max_model_len),
            "WRAPSERVE_DTYPE": config.dtype,
            "WRAPSERVE_GPU_MEMORY_UTILIZATION": str(config.memory_fraction),
            "WRAPSERVE_ENFORCE_EAGER": str(config.enforce_eager).lower(),
            "WRAPSERVE_STRUCTURED_OUTPUT_BACKEND": config.backend,
            "WRAPSERVE_LOAD_FORMAT": config.load_format,
            **({"WRAPSERVE_KV_CACHE_GIB": str(config.kv_cache_gib)} if config.kv_cache_gib else {}),
            **({"WRAPSERVE_BLOCK_SIZE": str(config.block_size)} if config.block_size else {}),
            "WRAPSERVE_LOG_LEVEL": "warning",
            "PYTHONUNBUFFERED": "1",
            "VLLM_CPU_OMP_THREADS_BIND": config.cpu_bind,
            **config.extra_env,
            **env_overrides,
        }
        command = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
        return self._start(name, command, env, port)

    def start_vllm(self, name: str = "vllm", *extra_args: str, backend: str | None = None) -> StartedServer:
        """vLLM's own OpenAI server on the same model folder, engine options and grammar
        backend (or ``backend``: "auto" is vLLM's own default)."""
        config, port = self.config, free_port()
        command = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(config.model_dir),
            "--served-model-name",
            config.model_id,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dtype",
            config.dtype,
            "--max-model-len",
            str(config.max_model_len),
            "--gpu-memory-utilization",
            str(config.memory_fraction),
            "--structured-outputs-config",
            f'{{"backend": "{backend or config.backend}"}}',
            "--load-format",
            config.load_format,
            "--enable-prefix-caching",
            "--seed",
            "0",
            "--uvicorn-log-level",
            "warning",
            *(["--enforce-eager"] if config.enforce_eager else []),
            *(
                ["--kv-cache-memory-bytes", str(int(config.kv_cache_gib * 2**30))]
                if config.kv_cache_gib
                else []
            ),
            *(["--block-size", str(config.block_size)] if config.block_size else []),
            *extra_args,
        ]
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "VLLM_CPU_OMP_THREADS_BIND": config.cpu_bind,
            # Wrapserve's vLLM plugins load in every vLLM process of this virtualenv. The
            # CPU grammar-mask and outlines-advance ones are Wrapserve speed-ups, not part of
            # stock vLLM: off here unless asked for (--vllm-fast-cpu-masks,
            # --vllm-fast-grammar-advance). The compat fixes stay, as on a node whose vLLM
            # needs them its own server would fail without them.
            "WRAPSERVE_FAST_CPU_MASKS": "true" if config.vllm_fast_cpu_masks else "false",
            "WRAPSERVE_FAST_GRAMMAR_ADVANCE": "true" if config.vllm_fast_grammar_advance else "false",
            **config.extra_env,
        }
        return self._start(name, command, env, port)
