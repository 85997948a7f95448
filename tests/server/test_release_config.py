"""Release rules without a server: the file's validation, sticky buckets, calibration, the
shadow records' owners, and the promotion gate."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from server.cli.main import app as cli
from server.releases.channels import Releases, bucket
from server.releases.shadow import ShadowRunner, ShadowStore
from tests.conftest import USER_WRAPPERS
from wrappers.catalogue import BUILTINS
from wrappers.errors import ConfigurationError
from wrappers.evals.gate import gate
from wrappers.evals.store import EvalStore, StoredCase
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
    with pytest.raises(
        WrapperNotFound,
        match=r"no version or channel 'beta' \(versions: 2.0.0, 1.0.0; channels: stable\)",
    ):
        table.route("ticket-priority", "beta", None)
    split = releases(tmp_path, '[sentiment.channels]\ncanary = { split = { "1.0.0" = 50, "1.1.0" = 50 } }\n')
    assert split.route("sentiment", "canary", "k").split == {"1.0.0": 50, "1.1.0": 50}
    with pytest.raises(
        WrapperNotFound, match=r"no version or channel 'stabel' \(versions: .*; channels: canary"
    ):
        split.route("sentiment", "stabel", None)


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


async def test_shadow_comparisons_are_read_back_only_by_the_key_that_made_them(tmp_path: Path) -> None:
    runner = ShadowRunner(ShadowStore(tmp_path / "state.sqlite3"), max_in_flight=4)

    async def candidate() -> Any:
        return SimpleNamespace(output={"priority": "low"})

    async def broken() -> Any:
        raise RuntimeError("boom")

    for owner, call in (("alice", candidate), ("bob", candidate), ("bob", broken)):
        runner.submit(
            call,
            wrapper="ticket-priority",
            channel="stable",
            served_version="1.0.0",
            candidate_version="2.0.0",
            raw_input={"text": f"{owner}'s ticket"},
            served_output={"priority": "low"},
            owner=owner,
        )
    await runner.idle()
    store = runner.store
    alice = store.recent("ticket-priority", 10, "alice")
    assert [row["input"] for row in alice] == [{"text": "alice's ticket"}] and alice[0]["agreed"] is True
    bob = store.recent("ticket-priority", 10, "bob")
    # Each row is written from a thread of its own, so their order is not the order submitted.
    errors = sorted((row["error"] or "") for row in bob)
    assert errors == ["", "internal_error: RuntimeError"]  # counted, never raised
    assert len(store.recent("ticket-priority", 10, None)) == 3  # no keys configured: one tenant
    assert runner.outcomes[("ticket-priority", "1.0.0", "2.0.0", "error")] == 1
    await runner.stop()
    runner.submit(
        candidate,
        wrapper="ticket-priority",
        channel="stable",
        served_version="1.0.0",
        candidate_version="2.0.0",
        raw_input={},
        served_output={},
    )
    await asyncio.sleep(0)
    assert store.recent("ticket-priority", 10, None) == []  # stopped: nothing starts, nothing raises


def add_run(store: EvalStore, version: str, metrics: dict[str, Any], dataset_hash: str = "f" * 64) -> None:
    store.add_run(
        created_at="2026-12-07T00:00:00+00:00",
        model="smollm2-135m-instruct",
        wrapper="ticket-priority",
        version=version,
        fingerprint="sha256:x",
        server_url="http://x",
        cases=[StoredCase(0, {"text": "0"}, {"priority": "low"}, None, (), True, True)],
        kind="dataset",
        dataset="tickets.jsonl",
        dataset_hash=dataset_hash,
        metrics=metrics,
    )


def test_the_gate_weighs_failed_calls_and_refuses_runs_judged_on_different_figures(tmp_path: Path) -> None:
    store = EvalStore(tmp_path / "state.sqlite3")
    add_run(store, "1.0.0", {"metric": "scores", "mae": 0.5, "failed": 0})
    add_run(store, "2.0.0", {"metric": "scores", "mae": 0.2, "failed": 3})  # better error, fewer answers
    decision = gate(store, "ticket-priority", "2.0.0", "1.0.0")
    assert not decision.allowed and "failed 3 calls" in decision.reason
    add_run(store, "2.0.0", {"metric": "labels", "accuracy": 0.9})
    decision = gate(store, "ticket-priority", "2.0.0", "1.0.0")
    assert not decision.allowed and "judged on accuracy" in decision.reason
    add_run(store, "2.0.0", {"metric": "scores", "mae": 0.4, "failed": 0})
    assert gate(store, "ticket-priority", "2.0.0", "1.0.0").allowed


def test_promoting_onto_a_split_channel_is_gated_against_every_version_of_the_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WRAPSERVE_HOME", str(tmp_path))
    monkeypatch.setenv("WRAPSERVE_WRAPPERS_DIR", str(USER_WRAPPERS))
    path = tmp_path / "releases.toml"
    path.write_text('[ticket-priority.channels]\ncanary = { split = { "1.0.0" = 50, "2.0.0" = 50 } }\n')
    store = EvalStore(tmp_path / "wrapserve.sqlite3")
    add_run(store, "1.0.0", {"metric": "labels", "accuracy": 0.8})
    add_run(store, "2.0.0", {"metric": "labels", "accuracy": 0.6})
    runner = CliRunner()
    refused = runner.invoke(
        cli, ["release", "promote", "ticket-priority", "2.0.0", "--channel", "canary", "--file", str(path)]
    )
    assert refused.exit_code == 1 and "the candidate is worse" in refused.output, refused.output
    assert "split" in path.read_text()  # unchanged
    add_run(store, "2.0.0", {"metric": "labels", "accuracy": 0.8})
    promoted = runner.invoke(
        cli, ["release", "promote", "ticket-priority", "2.0.0", "--channel", "canary", "--file", str(path)]
    )
    assert promoted.exit_code == 0, promoted.output
    assert Releases(path, registry()).route("ticket-priority", "canary", "k").version == "2.0.0"
