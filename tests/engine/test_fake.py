"""The fake engine keeps the promises of the ``Engine`` interface it stands in for."""

from __future__ import annotations

import asyncio
import re

import pytest

from server.engine.fake import FakeEngine
from server.engine.protocol import Constraint, GenerationRequest, Sampling
from server.structured.grammar import compact_regex

SCHEMA = {
    "type": "object",
    "properties": {"label": {"enum": ["positive", "negative"]}, "n": {"type": "integer"}},
    "required": ["label", "n"],
}


def _request(sampling: Sampling, constraint: Constraint | None = None, rid: str = "r") -> GenerationRequest:
    return GenerationRequest(rid, [1, 2, 3], sampling, constraint)


@pytest.mark.parametrize("seed", [0, 1, 7])
async def test_constrained_text_matches_its_regex(seed: int) -> None:
    regex = compact_regex(SCHEMA)
    result = await FakeEngine().generate(
        _request(Sampling(max_tokens=200, seed=seed, n=2), Constraint("regex", regex))
    )
    assert len(result.choices) == 2
    for choice in result.choices:
        assert choice.finish_reason == "stop"
        assert re.fullmatch(regex, choice.text), choice.text


async def test_max_tokens_cuts_with_length_and_stop_strings_end_with_stop() -> None:
    engine = FakeEngine()
    cut = (await engine.generate(_request(Sampling(max_tokens=3)))).choices[0]
    assert (cut.finish_reason, cut.completion_tokens, len(cut.text)) == ("length", 3, 3)
    free = (await engine.generate(_request(Sampling(max_tokens=500)))).choices[0]
    assert free.finish_reason == "stop"
    stop = free.text[4:6]
    stopped = (await engine.generate(_request(Sampling(max_tokens=500, stop=(stop,))))).choices[0]
    assert stopped.finish_reason == "stop"
    assert stopped.text == free.text[: free.text.index(stop)]


async def test_seeds_change_the_answer_and_the_same_seed_repeats_it() -> None:
    engine = FakeEngine()
    texts = [
        (await engine.generate(_request(Sampling(max_tokens=500, seed=s)))).choices[0].text for s in range(6)
    ]
    assert len(set(texts)) > 1
    again = (await engine.generate(_request(Sampling(max_tokens=500, seed=3)))).choices[0].text
    assert again == texts[3]


async def test_a_closed_stream_and_a_cancelled_call_are_aborted() -> None:
    engine = FakeEngine(step_s=0.01)
    stream = engine.stream(_request(Sampling(max_tokens=50), rid="streamed"))
    first = await anext(stream)
    assert first.text and engine.queue_depth() == 1
    await stream.aclose()  # type: ignore[attr-defined]
    call = asyncio.ensure_future(engine.generate(_request(Sampling(max_tokens=50), rid="called")))
    await asyncio.sleep(0.03)
    assert engine.queue_depth() == 1
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert engine.queue_depth() == 0
    assert engine.aborted == ["streamed", "called"]


async def test_stream_deltas_add_up_to_the_generated_text() -> None:
    engine = FakeEngine()
    request = _request(Sampling(max_tokens=40, seed=2))
    deltas = [delta async for delta in engine.stream(request)]
    whole = (await engine.generate(request)).choices[0]
    assert "".join(d.text for d in deltas) == whole.text
    assert deltas[-1].finish_reason == whole.finish_reason
    assert deltas[-1].completion_tokens == whole.completion_tokens


async def test_scores_are_log_probabilities_of_each_continuation() -> None:
    scores = await FakeEngine().score("s", [1, 2], [[5], [6, 7], [8]])
    assert len(scores.logprobs) == 3 and all(value <= 0 for value in scores.logprobs)
    with pytest.raises(Exception, match="at least one token"):
        await FakeEngine().score("s", [1], [[]])
