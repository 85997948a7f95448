from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import Settings, hash_api_key


def test_defaults_are_safe_and_local(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WRAPSERVE_HOST", "WRAPSERVE_PORT", "WRAPSERVE_MODEL", "WRAPSERVE_HOME"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.model == "smollm2-135m-instruct"
    assert settings.home == Path.home() / ".cache" / "wrapserve"
    assert settings.weights_path == settings.home / "models"


def test_env_prefix_and_explicit_values_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WRAPSERVE_PORT", "9001")
    monkeypatch.setenv("WRAPSERVE_HOME", str(tmp_path))
    assert Settings().port == 9001
    assert Settings().home == tmp_path
    assert Settings(port=9002).port == 9002  # what a CLI flag does


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRAPSERVE_PORT", "99999")
    with pytest.raises(ValueError, match="port"):
        Settings()


def test_api_keys_are_kept_hashed_only() -> None:
    settings = Settings(api_keys=["s3cret"])
    assert settings.api_keys == [hash_api_key("s3cret")]
    assert "s3cret" not in settings.model_dump_json()
