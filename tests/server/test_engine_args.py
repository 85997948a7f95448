"""How settings become vLLM engine arguments (no engine start)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models import ModelRegistry
from server.settings import Settings
from server.vllm.args import detect_device, engine_args, engine_environment
from server.vllm.dtype import cpu_has_native_bf16, run_dtype
from wrappers.errors import ConfigurationError

MANIFEST = ModelRegistry.load().get("smollm2-135m-instruct")


def test_cpu_defaults_that_work_on_the_build_machines() -> None:
    args = engine_args(Settings(), MANIFEST, Path("/weights"), "cpu")
    assert args.enforce_eager is True
    assert args.gpu_memory_utilization == 0.4
    assert args.max_model_len == MANIFEST.max_model_len
    assert args.served_model_name == ["smollm2-135m-instruct"]
    assert args.structured_outputs_config["backend"] == "guidance"
    assert args.enable_prefix_caching is True
    assert args.kv_cache_memory_bytes == 2 * 2**30


def test_gpu_parallelism_passes_through_to_vllm() -> None:
    settings = Settings(
        tensor_parallel_size=4,
        pipeline_parallel_size=2,
        data_parallel_size=2,
        distributed_executor_backend="ray",
        structured_output_backend="xgrammar",
    )
    args = engine_args(settings, MANIFEST, Path("/weights"), "cuda")
    assert (args.tensor_parallel_size, args.pipeline_parallel_size, args.data_parallel_size) == (4, 2, 2)
    assert args.distributed_executor_backend == "ray"
    assert args.enforce_eager is False
    assert args.gpu_memory_utilization == 0.9
    assert args.kv_cache_memory_bytes is None
    assert args.structured_outputs_config["backend"] == "xgrammar"


def test_dtype_is_the_manifests_cpu_dtype_on_a_cpu_without_bf16_unless_set() -> None:
    assert MANIFEST.cpu_dtype == "float32" and MANIFEST.dtype == "bfloat16"
    assert run_dtype(None, MANIFEST, on_cpu=True, native_bf16=lambda: False) == "float32"
    assert run_dtype(None, MANIFEST, on_cpu=True, native_bf16=lambda: True) == "bfloat16"
    assert run_dtype(None, MANIFEST, on_cpu=False, native_bf16=lambda: False) == "bfloat16"
    assert run_dtype("float32", MANIFEST, on_cpu=True, native_bf16=lambda: True) == "float32"
    assert run_dtype("bfloat16", MANIFEST, on_cpu=True, native_bf16=lambda: False) == "bfloat16"
    fp16 = MANIFEST.model_copy(update={"dtype": "float16"})  # not bf16: its cpu_dtype either way
    assert run_dtype(None, fp16, on_cpu=True, native_bf16=lambda: True) == "float32"
    on_this_cpu = "bfloat16" if cpu_has_native_bf16() else "float32"
    assert engine_args(Settings(), MANIFEST, Path("/w"), "cpu").dtype == on_this_cpu
    assert engine_args(Settings(), MANIFEST, Path("/w"), "cuda").dtype == "bfloat16"


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ("fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni", True),
        ("fpu sse2 avx512f amx_tile amx_bf16 amx_int8", True),
        ("fpu sse2 avx2 avx512f avx512bw avx512_vnni", False),  # AVX-512 alone: bf16 emulated
    ],
)
def test_hardware_bf16_is_read_from_the_cpu_flags(tmp_path: Path, flags: str, native: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: some cpu\nflags\t\t: {flags}\n\n")
    assert cpu_has_native_bf16(cpuinfo) is native
    assert cpu_has_native_bf16(tmp_path / "missing") is False


def test_block_size_is_32_on_cpu_vllms_own_on_gpu_unless_set() -> None:
    assert engine_args(Settings(), MANIFEST, Path("/w"), "cpu").block_size == 32
    assert engine_args(Settings(), MANIFEST, Path("/w"), "cuda").block_size is None
    assert engine_args(Settings(block_size=64), MANIFEST, Path("/w"), "cpu").block_size == 64


def test_a_block_size_the_cpu_backend_cannot_run_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="multiple of 32"):
        engine_args(Settings(block_size=16), MANIFEST, Path("/w"), "cpu")
    assert engine_args(Settings(block_size=16), MANIFEST, Path("/w"), "cuda").block_size == 16


def test_manifest_engine_options_override_defaults() -> None:
    manifest = MANIFEST.model_copy(update={"engine": {"max_num_batched_tokens": 4096}})
    assert engine_args(Settings(), manifest, Path("/w"), "cpu").max_num_batched_tokens == 4096


@pytest.mark.gpu
def test_auto_device_is_cuda_on_a_gpu_node() -> None:
    assert detect_device("auto") == "cuda"


def test_engine_environment_follows_the_settings_and_keeps_what_the_operator_set() -> None:
    settings = Settings(fast_cpu_masks=False, fast_grammar_advance=True, engine_grammar_timeout_s=42)
    fresh = engine_environment(settings, {})
    assert fresh["WRAPSERVE_FAST_CPU_MASKS"] == "false"
    assert fresh["WRAPSERVE_FAST_GRAMMAR_ADVANCE"] == "true"
    assert fresh["VLLM_REGEX_COMPILATION_TIMEOUT_S"] == "42"
    assert fresh["VLLM_CONFIGURE_LOGGING"] == "1"
    # The operator's own vLLM variables win; the plugins' switches always follow the settings.
    operator = {"VLLM_REGEX_COMPILATION_TIMEOUT_S": "7", "WRAPSERVE_FAST_CPU_MASKS": "true"}
    kept = engine_environment(settings, operator)
    assert "VLLM_REGEX_COMPILATION_TIMEOUT_S" not in kept
    assert kept["WRAPSERVE_FAST_CPU_MASKS"] == "false"
