"""vLLM's engine arguments from Wrapserve's settings and a model manifest, and what
start-up needs around them: the device, a readable start failure, the KV-cache probe."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.manifest import ModelManifest
from server.settings import Settings
from server.vllm.dtype import run_dtype
from server.vllm.plugins.cpu_grammar_mask import ENV_SWITCH as CPU_MASKS_SWITCH
from server.vllm.plugins.grammar_advance import ENV_SWITCH as GRAMMAR_ADVANCE_SWITCH
from wrappers.errors import ConfigurationError

__all__ = [
    "CPU_BLOCK_SIZE",
    "KvCacheProbe",
    "detect_device",
    "engine_args",
    "engine_environment",
    "explain_start_failure",
]

# vLLM reads the CPU memory fraction as a share of NUMA node 0's RAM; eager mode starts
# several times faster on CPUs (benchmarks/RESULTS.md, "Engine defaults").
CPU_MEMORY_FRACTION = 0.4
CPU_KV_CACHE_GIB = 2.0
# vLLM's CPU default is 128-token KV blocks, and its prefix cache shares whole blocks only:
# a wrapper's static opening shorter than a block would be recomputed on every call. 32 is
# the smallest its CPU attention accepts (what it is worth: RESULTS.md, "Engine defaults").
CPU_BLOCK_SIZE = 32
GPU_MEMORY_FRACTION = 0.9


def detect_device(requested: str) -> str:
    if requested != "auto":
        return requested
    from vllm.platforms import current_platform

    return "cuda" if current_platform.is_cuda_alike() else "cpu"


def engine_environment(settings: Settings, current: Mapping[str, str]) -> dict[str, str]:
    """The variables vLLM's processes must see, given the ``current`` environment.

    vLLM reads its own switches from the environment, and the environment is the one thing
    its engine-core and worker processes inherit from this one, so it is how Wrapserve's
    plugins there (``server/vllm/plugins/``) learn the settings too. A variable the operator
    set for vLLM is kept; the plugins' switches always follow the settings.
    """
    wanted = {
        CPU_MASKS_SWITCH: "true" if settings.fast_cpu_masks else "false",
        GRAMMAR_ADVANCE_SWITCH: "true" if settings.fast_grammar_advance else "false",
    }
    defaults = {
        "VLLM_CONFIGURE_LOGGING": "1",
        # vLLM's budget for building a grammar's token index (its own default, 5 s, fails
        # ordinary catalogue grammars on a busy CPU). Grammars are vetted for automaton size
        # before they get here, and vLLM builds them off its scheduling loop.
        "VLLM_REGEX_COMPILATION_TIMEOUT_S": str(settings.engine_grammar_timeout_s),
    }
    wanted.update({name: value for name, value in defaults.items() if name not in current})
    return wanted


def engine_args(settings: Settings, manifest: ModelManifest, weights: Path, device: str) -> Any:
    from vllm.engine.arg_utils import AsyncEngineArgs

    on_cpu = device == "cpu"
    options: dict[str, Any] = {
        "model": str(weights),
        "served_model_name": [manifest.id],
        "dtype": run_dtype(settings.dtype, manifest, on_cpu),
        "max_model_len": settings.max_model_len or manifest.max_model_len,
        "enforce_eager": on_cpu if settings.enforce_eager is None else settings.enforce_eager,
        "gpu_memory_utilization": settings.gpu_memory_utilization
        or (CPU_MEMORY_FRACTION if on_cpu else GPU_MEMORY_FRACTION),
        "structured_outputs_config": {"backend": settings.structured_output_backend},
        "tensor_parallel_size": settings.tensor_parallel_size,
        "pipeline_parallel_size": settings.pipeline_parallel_size,
        "data_parallel_size": settings.data_parallel_size,
        "distributed_executor_backend": settings.distributed_executor_backend,
        "load_format": settings.load_format,
        "enable_prefix_caching": True,
        "disable_log_stats": False,
        "seed": 0,
    }
    if settings.max_num_seqs:
        options["max_num_seqs"] = settings.max_num_seqs
    if block_size := settings.block_size or (CPU_BLOCK_SIZE if on_cpu else None):
        if on_cpu and block_size % CPU_BLOCK_SIZE:
            # vLLM would fail deep in a worker process with a message the user never sees.
            raise ConfigurationError(
                f"WRAPSERVE_BLOCK_SIZE={block_size}: vLLM's CPU attention needs a multiple of {CPU_BLOCK_SIZE}"
            )
        options["block_size"] = block_size
    if kv_cache_gib := settings.kv_cache_gib or (CPU_KV_CACHE_GIB if on_cpu else None):
        options["kv_cache_memory_bytes"] = int(kv_cache_gib * 2**30)
    options.update(manifest.engine)  # per-model overrides written in the manifest
    return AsyncEngineArgs(**options)


def explain_start_failure(cause: str) -> str:
    """One line saying what went wrong at engine start-up and how to fix it."""
    text = " ".join(cause.split())
    lowered = text.lower()
    if "memory" in lowered or "kv cache" in lowered or "cache blocks" in lowered:
        return (
            f"not enough memory for the model and its KV cache ({text}); on CPU lower "
            "WRAPSERVE_KV_CACHE_GIB (or free memory), on GPU raise WRAPSERVE_GPU_MEMORY_UTILIZATION; "
            "a smaller WRAPSERVE_MAX_MODEL_LEN needs less"
        )
    return f"the engine failed to start: {text}"


class KvCacheProbe:
    """Keeps the latest KV-cache usage (0-1) vLLM reports through its stat-logger hook.

    ``logger_class()`` stands in for vLLM's Prometheus stat logger, which vLLM adds unless
    one is given: Wrapserve publishes metrics of its own (``server/http/metrics.py``), and
    vLLM's would only cost histogram updates for every token on the event loop.
    """

    def __init__(self) -> None:
        self.usage: float | None = None

    def logger_class(self) -> type:
        from vllm.v1.metrics.loggers import PrometheusStatLogger

        probe = self

        class KvUsageLogger(PrometheusStatLogger):
            def __init__(self, vllm_config: Any, engine_indexes: list[int] | None = None) -> None:
                self.engine_indexes = engine_indexes or [0]  # vLLM's registry is left untouched

            def record(
                self,
                scheduler_stats: Any,
                iteration_stats: Any,
                mm_cache_stats: Any = None,
                engine_idx: int = 0,
            ) -> None:
                if scheduler_stats is not None:
                    probe.usage = float(scheduler_stats.kv_cache_usage)

            def record_admission_rejection(self, reason: str) -> None:
                pass

            def record_sleep_state(self, sleep: int = 0, level: int = 0) -> None:
                pass

            def log_engine_initialized(self) -> None:
                pass

            def log(self) -> None:
                pass

        return KvUsageLogger
