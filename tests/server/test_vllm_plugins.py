"""Wrapserve's plugins for vLLM (server/vllm/plugins/): each is registered for vLLM to load and
patches vLLM once; the speed-ups (cpu_grammar_mask.py, grammar_advance.py) also read their
environment switch and run in the engine process whose work they speed up. What the always-on
ones do is tested beside them (test_number_digits.py, test_validated_grammars.py)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from vllm.v1.structured_output import backend_guidance
from vllm.v1.structured_output import utils as vllm_utils
from vllm.v1.structured_output.backend_guidance import GuidanceBackend
from vllm.v1.structured_output.backend_outlines import OutlinesBackend

from server.vllm.plugins import (
    cpu_grammar_mask,
    env_switch,
    grammar_advance,
    number_digits,
    validated_grammars,
)
from tests.conftest import RunningServer


def vllms_own(function: Any, marker: str) -> Any:
    """vLLM's own function, also when the plugin already patched it in this process."""
    if getattr(function, marker, False):
        return function.__wrapped__
    return function


@dataclass(frozen=True)
class Plugin:
    entry_point: str
    module: ModuleType  # its install() and ENV_SWITCH
    owner: Any  # what install() patches, and which attribute
    attribute: str
    marker: str  # set on the patched function
    process: str  # the vLLM process whose work it speeds up, as the engine log names it
    installed: str  # words of the line it logs there
    # A call decoded token by token under its grammar (not scored): every step uses the plugin.
    wrapper: str
    text: str

    def vllms_own(self) -> Any:
        return vllms_own(getattr(self.owner, self.attribute), self.marker)


PLUGINS = [
    Plugin(
        "wrapserve_cpu_masks",
        cpu_grammar_mask,
        vllm_utils,
        "apply_grammar_bitmask",
        "_wrapserve_cpu_masks",
        process="VllmWorker",  # the model runner applies the masks
        installed="applied with numpy",
        wrapper="sentiment",
        text="What a lovely, helpful shop.",
    ),
    Plugin(
        "wrapserve_grammar_advance",
        grammar_advance,
        OutlinesBackend,
        "compile_grammar",
        "_wrapserve_grammar_advance",
        process="EngineCore",  # the scheduler builds and advances the grammars
        installed="without listing the next tokens",
        wrapper="entities",
        text="Ada Lovelace met Charles Babbage in London.",
    ),
]


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda plugin: plugin.entry_point)
def test_the_plugin_is_registered_switchable_and_installs_once(
    plugin: Plugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugins = {e.name: e.value for e in entry_points(group="vllm.general_plugins")}
    assert plugins.get(plugin.entry_point) == f"{plugin.module.__name__}:install"
    original = plugin.vllms_own()
    monkeypatch.setattr(plugin.owner, plugin.attribute, original)
    switch = plugin.module.ENV_SWITCH
    monkeypatch.setenv(switch, "false")
    plugin.module.install()
    assert getattr(plugin.owner, plugin.attribute) is original
    monkeypatch.setenv(switch, "true")
    plugin.module.install()
    patched = getattr(plugin.owner, plugin.attribute)
    assert patched is not original and getattr(patched, plugin.marker, False)
    plugin.module.install()
    assert getattr(plugin.owner, plugin.attribute) is patched  # not wrapped twice


# (entry point, module, what install() patches, which attribute, the marker on the patch)
ALWAYS_ON = [
    (
        "wrapserve_number_digits",
        number_digits,
        GuidanceBackend,
        "compile_grammar",
        "_wrapserve_number_digits",
    ),
    (
        "wrapserve_validated_grammars",
        validated_grammars,
        backend_guidance,
        "validate_guidance_grammar",
        "_wrapserve_validated_grammars",
    ),
]


@pytest.mark.parametrize(
    ("entry_point", "module", "owner", "attribute", "marker"), ALWAYS_ON, ids=lambda v: str(v)
)
def test_an_always_on_plugin_is_registered_and_installs_once(
    entry_point: str,
    module: ModuleType,
    owner: Any,
    attribute: str,
    marker: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plugins = {e.name: e.value for e in entry_points(group="vllm.general_plugins")}
    assert plugins.get(entry_point) == f"{module.__name__}:install"
    original = vllms_own(getattr(owner, attribute), marker)
    monkeypatch.setattr(owner, attribute, original)
    module.install()
    patched = getattr(owner, attribute)
    assert patched is not original and patched.__wrapped__ is original and getattr(patched, marker)
    module.install()
    assert getattr(owner, attribute) is patched  # not wrapped twice


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda plugin: plugin.entry_point)
def test_each_switch_reads_pydantics_spellings_of_false(plugin: Plugin) -> None:
    switch = plugin.module.ENV_SWITCH
    assert plugin.module.switched_on({}) and plugin.module.switched_on({switch: "true"})
    assert plugin.module.switched_on({switch: "1"}) and plugin.module.switched_on({"OTHER": "false"})
    offs = ("false", "0", "no", "off", "f", "n", " False ")
    assert not any(plugin.module.switched_on({switch: off}) for off in offs)
    assert not any(env_switch.switched_on({switch: off}, switch) for off in offs)


@pytest.mark.engine
@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda plugin: plugin.entry_point)
def test_the_engine_runs_it_where_it_acts_and_answers_stay_valid(
    plugin: Plugin, server: RunningServer, http: httpx.Client
) -> None:
    response = http.post(
        f"/v1/wrappers/{plugin.wrapper}/invoke",
        json={"input": {"text": plugin.text}, "options": {"decode": "plain"}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["output"]  # validated against the wrapper's schema by the server
    engine_log = Path(server.home, "logs", "engine.log").read_text(errors="replace")
    lines = [line for line in engine_log.splitlines() if plugin.process in line and plugin.installed in line]
    assert lines, f"vLLM's {plugin.process} process did not install {plugin.entry_point}"
