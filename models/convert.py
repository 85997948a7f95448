"""One-time conversion of a GGUF checkpoint to a bf16 safetensors folder vLLM loads.

transformers can dequantise GGUF, but the result is flagged as quantised and refuses
``save_pretrained``; so the dequantised state dict is copied into a plain model built
from the same config, and that is saved. Written to a temporary folder and renamed, so
an interrupted conversion never leaves a half folder that looks complete.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from models.manifest import ModelManifest

CONVERTED_MARKER = ".wrapserve-complete"  # written last: a folder without it is a torn conversion

__all__ = ["convert_gguf"]


def convert_gguf(gguf_file: Path, target: Path, manifest: ModelManifest) -> None:
    console = Console(stderr=True)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    started = time.monotonic()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as progress:
        step = progress.add_task(f"{manifest.id}: loading transformers", total=4)
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        progress.update(step, advance=1, description=f"{manifest.id}: dequantising {gguf_file.name}")
        folder, name = str(gguf_file.parent), gguf_file.name
        quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        dtype = getattr(torch, manifest.dtype) if manifest.dtype != "auto" else torch.bfloat16
        config.torch_dtype = dtype

        progress.update(step, advance=1, description=f"{manifest.id}: copying weights to {manifest.dtype}")
        plain = AutoModelForCausalLM.from_config(config, dtype=dtype)
        missing, unexpected = plain.load_state_dict(quantised.state_dict(), strict=False)
        # Tied embeddings legitimately appear as a missing lm_head; anything else is a bug.
        if [key for key in missing if key != "lm_head.weight"] or unexpected:
            raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")

        progress.update(step, advance=1, description=f"{manifest.id}: writing safetensors")
        plain.save_pretrained(staging, safe_serialization=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        tokenizer.save_pretrained(staging)
        (staging / CONVERTED_MARKER).write_text(f"{gguf_file}\n")
        progress.update(step, advance=1, description=f"{manifest.id}: done")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    console.print(f"[green]prepared {manifest.id} in {target} ({time.monotonic() - started:.0f}s)")
