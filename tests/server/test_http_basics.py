"""The real server over real HTTP: readiness and the model list."""

from __future__ import annotations

import re

import httpx
import openai

from tests.conftest import RunningServer


def test_health_is_ok_once_the_engine_is_ready(http: httpx.Client) -> None:
    response = http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model": "smollm2-135m-instruct"}


def test_health_was_503_while_the_engine_started(server: RunningServer) -> None:
    assert server.health_seen[0] == 503
    assert server.health_seen[-1] == 200


def test_models_lists_the_model_in_openai_shape(server: RunningServer) -> None:
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused")
    ids = [model.id for model in client.models.list()]
    assert "smollm2-135m-instruct" in ids


def test_startup_time_is_logged(server: RunningServer) -> None:
    assert "engine ready: model smollm2-135m-instruct on cpu in" in server.log()


def test_every_wrapper_with_an_example_was_warmed_on_the_engine(server: RunningServer) -> None:
    """Warm-up runs each wrapper's first example on the engine before /health says ready."""
    match = re.search(
        r"warmed for (\d+) wrappers in [\d.]+s \((\d+) first calls run, (\d+) failed\)", server.log()
    )
    assert match, "no warm-up line in the server log"
    wrappers, first_calls, failed = (int(group) for group in match.groups())
    assert first_calls >= 17 and first_calls <= wrappers  # every built-in has examples
    assert failed == 0


def test_unknown_route_is_a_json_404(http: httpx.Client) -> None:
    response = http.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
