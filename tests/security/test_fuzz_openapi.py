"""Property-based fuzzing of the published OpenAPI schema against the real server: no 5xx.

Every operation in ``/openapi.json`` gets generated requests (valid and invalid); the
only check is that no answer is a 5xx. Requests are pointed at the loaded
model and real wrappers, and token budgets are capped, so the run reaches the engine and
stays bounded on a CPU; every other field is as generated.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Err

from tests.conftest import RunningServer

pytestmark = pytest.mark.engine

TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")
TOKEN_CAP = 8
MAX_EXAMPLES = 8
MODEL = "smollm2-135m-instruct"
WRAPPERS = ("sentiment", "extract", "classify", "summarize")


def _cap_tokens(body: Any) -> None:
    if isinstance(body, dict):
        for name in TOKEN_FIELDS:
            value = body.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and TOKEN_CAP < value <= 100_000:
                body[name] = TOKEN_CAP
        options = body.get("options")
        if isinstance(options, dict):
            _cap_tokens(options)


def _aim(case: Any) -> None:
    """Point generated requests at things that exist, so they reach past the 404s:
    the loaded model, and real wrappers (the rest of the request stays as generated)."""
    if isinstance(case.body, dict) and "model" in case.body:
        case.body["model"] = MODEL
        if case.body.get("max_tokens") is None:  # absent or null: "the rest of the context"
            case.body["max_tokens"] = TOKEN_CAP
    if case.path_parameters and "name" in case.path_parameters:
        case.path_parameters["name"] = WRAPPERS[len(repr(case.body)) % len(WRAPPERS)]


def _fuzz(operation: Any, failures: list[str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        _aim(case)
        _cap_tokens(case.body)
        response = case.call(timeout=120)
        if response.status_code >= 500:
            failures.append(
                f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
            )

    run()


def test_no_operation_answers_5xx(server: RunningServer) -> None:
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")  # base URL: the server's
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # an operation the schema does not describe validly
            raise result.err()
        _fuzz(result.ok(), failures)
        operations += 1
    assert operations >= 10
    assert not failures, "\n".join(failures[:20])
