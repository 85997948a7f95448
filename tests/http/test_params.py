"""Token budgets of OpenAI-route requests."""

from __future__ import annotations

import pytest

from server.limits import Limits
from server.openai.params import resolve_max_tokens
from wrappers.errors import BadRequest


def test_a_request_without_max_tokens_gets_the_default_or_what_the_context_has_left() -> None:
    limits = Limits(default_max_tokens=1024)
    assert resolve_max_tokens(None, 100, 8192, limits, "max_tokens") == 1024
    assert resolve_max_tokens(None, 8000, 8192, limits, "max_tokens") == 192
    assert (
        resolve_max_tokens(3000, 100, 8192, limits, "max_tokens") == 3000
    )  # asked for: allowed up to the limit
    with pytest.raises(BadRequest):
        resolve_max_tokens(5000, 100, 8192, limits, "max_tokens")
