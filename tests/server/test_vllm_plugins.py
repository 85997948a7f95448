"""Wrapserve's speed-up plugins for vLLM (server/vllm/plugins/cpu_grammar_mask.py, server/vllm/plugins/grammar_advance.py):
each is registered for vLLM to load, reads its environment switch, patches vLLM once, and runs
in the engine process whose work it speeds up."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from vllm.v1.structured_output import utils as vllm_utils
from vllm.v1.structured_output.backend_outlines import OutlinesBackend

from server.vllm.plugins import cpu_grammar_mask, env_switch, grammar_advance
from tests.conftest import RunningServer


def _unwrapped(function: Any, marker: str) -> Any:
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
        return _unwrapped(getattr(self.owner, self.attribute), self.marker)


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
