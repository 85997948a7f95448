"""The ``openai`` SDK pointed at the session's real server."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.conftest import RunningServer

MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def client(server: RunningServer) -> Iterator[openai.OpenAI]:
    # No retries: a test must see the first answer, not a retried one.
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=300) as sdk:
        yield sdk
