"""Every golden example of every latest built-in wrapper answers 200 on the default model:
with bounded grammars (tests/wrappers/test_bounded_answers.py), no answer is cut off."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from wrappers.catalogue import BUILTINS
from wrappers.registry import WrapperRegistry


def test_every_golden_example_of_the_latest_versions_answers(http: httpx.Client) -> None:
    registry = WrapperRegistry(BUILTINS)
    latest = [registry.resolve(name) for name in registry.names()]

    def run(wrapper: Any) -> dict[str, Any]:
        inputs = [example.input for example in wrapper.examples]
        response = http.post(
            f"/v1/wrappers/{wrapper.name}/batch", json={"inputs": inputs, "version": wrapper.version}
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    with ThreadPoolExecutor(len(latest)) as pool:  # one continuous batch on the engine
        bodies = list(pool.map(run, latest))
    failures = [
        f"{body['wrapper']}@{body['version']} example {item['index']}: {item['error']}"
        for body in bodies
        for item in body["results"]
        if "error" in item
    ]
    assert not failures, "\n".join(failures)
    for wrapper, body in zip(latest, bodies, strict=True):
        assert body["version"] == wrapper.version
        assert all(item["finish_reason"] == "stop" for item in body["results"]), body
