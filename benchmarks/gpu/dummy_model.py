"""Write an 8B-shaped model folder for vLLM's dummy weight loader, plus its Wrapserve manifest.

``load_format="dummy"`` builds random weights from ``config.json`` alone, so the GPU run
measures real kernels at production scale with no weights to download (the air-gapped
case). The shape is Llama-3.1-8B's (32 layers, hidden 4096, GQA 32/8 heads, MLP 14336);
the vocabulary is the embedded SmolLM2 tokenizer's (49,152 tokens), copied alongside, so
grammars and chat template are the same as in CPU mode. Answers are random text; only
speed is measured, and validity is enforced by the grammar either way.

    python -m benchmarks.gpu.dummy_model --out /tmp/dummy-8b
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

__all__ = ["LLAMA_8B_SHAPE", "write_dummy_model"]

LLAMA_8B_SHAPE = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"},
    "max_position_embeddings": 8192,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "attention_bias": False,
    "mlp_bias": False,
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")


def write_dummy_model(out: Path, tokenizer_dir: Path, model_id: str = "dummy-8b") -> Path:
    """Create ``out/<model_id>/`` (config + tokenizer) and ``out/manifests/<model_id>.toml``."""
    folder = out / model_id
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer_config = json.loads((tokenizer_dir / "config.json").read_text())
    config = {
        **LLAMA_8B_SHAPE,
        "vocab_size": tokenizer_config["vocab_size"],
        "bos_token_id": tokenizer_config.get("bos_token_id"),
        "eos_token_id": tokenizer_config.get("eos_token_id"),
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy2(tokenizer_dir / name, folder / name)
    manifests = out / "manifests"
    manifests.mkdir(exist_ok=True)
    (manifests / f"{model_id}.toml").write_text(
        f'id = "{model_id}"\n'
        'description = "Llama-3.1-8B-shaped model with random weights (vLLM dummy loader), for benchmarks"\n'
        'parameters = "8B"\ndtype = "bfloat16"\nmax_model_len = 8192\n\n'
        f'[source]\nkind = "dummy"\nconfig_dir = "{folder}"\n\n'
        '[engine]\nload_format = "dummy"\n'
    )
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--tokenizer-dir",
        type=Path,
        default=Path.home() / ".cache" / "wrapserve" / "models" / "smollm2-135m-instruct",
    )
    parser.add_argument("--model-id", default="dummy-8b")
    args = parser.parse_args()
    print(write_dummy_model(args.out, args.tokenizer_dir, args.model_id))


if __name__ == "__main__":
    main()
