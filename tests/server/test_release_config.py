"""The releases file and routing rules, without a server: validation, sticky buckets, calibration."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.releases.channels import Releases, bucket
from tests.conftest import USER_WRAPPERS
from wrappers.catalogue import BUILTINS
from wrappers.errors import ConfigurationError
from wrappers.registry import WrapperNotFound, WrapperRegistry, load_directory


def registry() -> WrapperRegistry:
    found = WrapperRegistry(BUILTINS)
    for wrapper in load_directory(USER_WRAPPERS):
        found.add(wrapper)
    return found


def releases(tmp_path: Path, text: str, suffix: str = ".toml") -> Releases:
    path = tmp_path / f"releases{suffix}"
    path.write_text(text)
    return Releases(path, registry())


def test_a_split_is_sticky_per_key_and_even_across_keys(tmp_path: Path) -> None:
    table = releases(
        tmp_path, '[ticket-priority.channels]\ncanary = { split = { "1.0.0" = 50, "2.0.0" = 50 } }\n'
    )
    served = [table.route("ticket-priority", "canary", f"key-{n}").version for n in range(10_000)]
    assert served == [table.route("ticket-priority", "canary", f"key-{n}").version for n in range(10_000)]
    share = served.count("1.0.0") / len(served)
    print(f"share of 10,000 keys on 1.0.0: {share:.3f}")
    assert 0.48 < share < 0.52
    assert bucket("a", "canary", "k") != bucket("b", "canary", "k") or bucket("a", "x", "k") != bucket(
        "a", "y", "k"
    )


def test_versions_pass_through_and_unknown_channels_are_404(tmp_path: Path) -> None:
    table = releases(tmp_path, '{"ticket-priority": {"channels": {"stable": {"version": "1.0.0"}}}}', ".json")
    assert table.route("ticket-priority", "2", None).version == "2"
    assert table.route("ticket-priority", None, None).channel is None
    assert table.route("ticket-priority", "stable", None).version == "1.0.0"
    with pytest.raises(WrapperNotFound, match=r"no channel 'beta' \(channels: stable\)"):
        table.route("ticket-priority", "beta", None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[nobody.channels]\nstable = { version = "1.0.0" }\n', "no wrapper named 'nobody'"),
        ('[sentiment.channels]\nstable = { version = "7.0.0" }\n', "not served"),
        (
            '[sentiment.channels]\nstable = { version = "1.0.0", split = { "1.0.0" = 100 } }\n',
            "either version or split",
        ),
        ('[sentiment.channels]\n"1x" = { version = "1.0.0" }\n', "must match"),
        ('[sentiment.calibration."1.0.0"]\ntemperature = 0\n', "greater than 0.01"),
        ("[sentiment]\nchanels = {}\n", "Extra inputs"),
        ("[sentiment", "not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_whole_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        releases(tmp_path, text)


def test_a_failed_reload_keeps_the_releases_in_force(tmp_path: Path) -> None:
    table = releases(tmp_path, '[sentiment.channels]\nstable = { version = "1.0.0" }\n')
    (tmp_path / "releases.toml").write_text("[sentiment")
    assert table.reload() is False and table.generation == 1 and "TOML" in (table.last_error or "")
    assert table.route("sentiment", "stable", None).version == "1.0.0"
    (tmp_path / "releases.toml").unlink()
    assert table.reload() is True and table.config.wrappers == {} and table.last_error is None


def test_calibration_applies_on_its_model_only(tmp_path: Path) -> None:
    table = releases(
        tmp_path, '[sentiment.calibration."1.0.0"]\ntemperature = 2.0\nabstain_below = 0.7\nmodel = "m"\n'
    )
    calibrated = table.calibrate("sentiment", "1.0.0", "m", {"positive": 0.9, "negative": 0.1})
    assert calibrated is not None and calibrated.abstained is False
    assert calibrated.scores["positive"] == pytest.approx(0.75)  # 0.9**0.5 / (0.9**0.5 + 0.1**0.5)
    assert table.calibrate("sentiment", "1.0.0", "other", {"positive": 0.9, "negative": 0.1}) is None
    assert table.calibrate("sentiment", "1.1.0", "m", {"positive": 0.9, "negative": 0.1}) is None
