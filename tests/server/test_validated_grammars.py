"""Each grammar checked once in the API process (server/vllm/plugins/validated_grammars.py):
vLLM's own check runs for a grammar not seen pass before, a bad grammar is refused every
time, and the memory is bounded. (Registered and installed once: test_vllm_plugins.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from vllm.exceptions import VLLMValidationError
from vllm.sampling_params import SamplingParams, StructuredOutputsParams
from vllm.v1.structured_output import backend_guidance

from server.vllm.plugins.validated_grammars import remembering
from tests.server.test_vllm_plugins import vllms_own


def _vllms_own() -> Any:
    return vllms_own(backend_guidance.validate_guidance_grammar, "_wrapserve_validated_grammars")


class Counting:
    def __init__(self) -> None:
        self.calls = 0
        self.own = _vllms_own()

    def __call__(self, sampling_params: Any, tokenizer: Any = None) -> None:
        self.calls += 1
        self.own(sampling_params, tokenizer=tokenizer)


def _params(**structured: Any) -> SamplingParams:
    return SamplingParams(structured_outputs=StructuredOutputsParams(**structured))


def test_a_grammar_that_passed_is_not_checked_again() -> None:
    counting = Counting()
    check = remembering(counting)
    for _ in range(5):
        check(_params(regex=r"(yes|no)"))
        check(_params(json='{"type": "object"}'))
    assert counting.calls == 2
    check(_params(regex=r"(yes|no|maybe)"))
    assert counting.calls == 3


def test_a_bad_grammar_is_refused_every_time() -> None:
    counting = Counting()
    check = remembering(counting)
    for _ in range(3):
        with pytest.raises(VLLMValidationError):
            check(_params(regex=r"(unclosed"))
    assert counting.calls == 3 and not check.remembered  # type: ignore[attr-defined]


def test_memory_is_bounded_and_least_recent_goes_first() -> None:
    counting = Counting()
    check = remembering(counting, capacity=2)
    for regex in ("a", "b", "a", "c"):  # "b" is the least recently used when "c" comes
        check(_params(regex=regex))
    assert len(check.remembered) == 2  # type: ignore[attr-defined]
    calls = counting.calls
    check(_params(regex="a"))
    assert counting.calls == calls
    check(_params(regex="b"))
    assert counting.calls == calls + 1
