"""The dtype the engine runs a model in, when the settings do not name one.

A manifest gives the model's dtype and, optionally, a ``cpu_dtype`` for CPUs that cannot do
that dtype's arithmetic in hardware: vLLM's CPU matmuls (oneDNN) run bf16 faster than fp32
where the CPU has bf16 instructions (AVX512-BF16 or AMX) and emulate it far slower where it
has none (the figures: benchmarks/RESULTS.md, "Engine defaults").
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

from models.manifest import ModelManifest

__all__ = ["cpu_has_native_bf16", "run_dtype"]

# x86 flags for hardware bf16 arithmetic, as Linux lists them in /proc/cpuinfo.
_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@cache
def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU does bf16 arithmetic in hardware (False where that cannot be read)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return not _BF16_FLAGS.isdisjoint(value.split())
    return False


def run_dtype(
    requested: str | None,
    manifest: ModelManifest,
    on_cpu: bool,
    native_bf16: Callable[[], bool] = cpu_has_native_bf16,
) -> str:
    """``requested`` if set; on a CPU, the manifest's ``cpu_dtype`` unless the model's own
    dtype is bf16 and the CPU does bf16 in hardware; else the manifest's dtype."""
    if requested:
        return requested
    if on_cpu and manifest.cpu_dtype and not (manifest.dtype == "bfloat16" and native_bf16()):
        return manifest.cpu_dtype
    return manifest.dtype
