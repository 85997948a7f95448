"""Answers held to their schema: validated, resampled a bounded number of times, or a 502.

The grammar holds most keywords while decoding; the validator checks the rest
(``uniqueItems``, ``not``, ``oneOf``'s exclusivity...) and every other keyword again.
An answer that fails is generated again with another seed, at most ``resamples`` times;
if it still fails, ``OutputInvalid`` (502) carries the raw output. A 200 with a schema
and ``finish_reason: "stop"`` is therefore always valid against it. An answer that
``max_tokens`` cut off is returned as it is, with ``finish_reason: "length"`` (OpenAI's
contract: the client chose the bound, and resampling it would multiply a small bound's
cost); wrapper calls, whose bound is the wrapper's own, resample those too
(``server/invocation/service.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

from server.engine.protocol import Engine, GeneratedChoice, GenerationRequest, GenerationResult, Sampling
from server.structured.grammar import CompiledGrammar
from wrappers.errors import OutputInvalid

__all__ = ["StreamCheck", "checked_answer", "generate_checked", "resample_sampling"]

# Greedy decoding gives the same answer whatever the seed, so a resample of a greedy call
# samples at this temperature instead, and discourages the repetition that loops.
RESAMPLE_TEMPERATURE = 0.7
RESAMPLE_REPETITION_PENALTY = 1.1
# Answers longer than this, or with keywords only validation holds (bounded backtracking,
# uniqueItems' pairs), are validated in a worker thread, off the event loop.
_INLINE_CHARS = 4096
_VALIDATION_BUDGET_S = 5.0


def _checked_now(grammar: CompiledGrammar, text: str, finish_reason: str | None) -> Any:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise OutputInvalid(
            f"the answer is not JSON: {str(error)[:200]}", raw_output=text, finish_reason=finish_reason
        ) from None
    if problems := grammar.validation_errors(value):
        raise OutputInvalid(
            f"the answer does not match the schema: {'; '.join(problems)}",
            raw_output=text,
            finish_reason=finish_reason,
        )
    return value


async def checked_answer(grammar: CompiledGrammar, text: str, finish_reason: str | None = None) -> Any:
    """The answer parsed, or ``OutputInvalid`` saying why it is not JSON valid against
    ``grammar``'s schema. The one check every route's answers go through."""
    if len(text) <= _INLINE_CHARS and not grammar.validated_only:  # linear, and short: inline
        return _checked_now(grammar, text, finish_reason)
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(_checked_now, grammar, text, finish_reason), timeout=_VALIDATION_BUDGET_S
        )
    except TimeoutError:
        raise OutputInvalid(
            f"the answer could not be validated within {_VALIDATION_BUDGET_S:g}s",
            raw_output=text,
            finish_reason=finish_reason,
        ) from None


def resample_sampling(sampling: Sampling, attempt: int) -> Sampling:
    """The sampling of resample number ``attempt`` (1, 2...): one choice, another seed."""
    return dataclasses.replace(
        sampling,
        n=1,
        seed=((sampling.seed or 0) + 7919 * attempt) % 2**63,
        temperature=sampling.temperature or RESAMPLE_TEMPERATURE,
        repetition_penalty=max(sampling.repetition_penalty, RESAMPLE_REPETITION_PENALTY),
    )


async def generate_checked(
    engine: Engine, request: GenerationRequest, grammar: CompiledGrammar | None, resamples: int
) -> GenerationResult:
    """``engine.generate`` whose finished choices all validate against ``grammar``."""
    result = await engine.generate(request)
    if grammar is None:
        return result
    choices: list[GeneratedChoice] = []
    for choice in result.choices:
        for attempt in range(1, resamples + 2):
            if choice.finish_reason != "stop":
                break  # cut off (or aborted): returned as it is
            try:
                await checked_answer(grammar, choice.text, choice.finish_reason)
                break
            except OutputInvalid as error:
                if attempt > resamples:
                    raise OutputInvalid(
                        f"{error.message} (after {resamples} resamples)",
                        raw_output=choice.text,
                        finish_reason=choice.finish_reason,
                    ) from None
            again = await engine.generate(
                dataclasses.replace(
                    request,
                    request_id=f"{request.request_id}-{choice.index}-resample{attempt}",
                    sampling=resample_sampling(request.sampling, attempt),
                )
            )
            choice = dataclasses.replace(again.choices[0], index=choice.index)
        choices.append(choice)
    return dataclasses.replace(result, choices=tuple(choices))


class StreamCheck:
    """Streamed answers validated when each choice finishes, before its last chunk is
    sent; a stream cannot resample text already sent, so an invalid one ends in an error."""

    def __init__(self, grammar: CompiledGrammar | None) -> None:
        self._grammar = grammar
        self._texts: dict[int, list[str]] = {}

    async def check(self, index: int, text: str, finish_reason: str | None) -> None:
        if self._grammar is None:
            return
        self._texts.setdefault(index, []).append(text)
        if finish_reason != "stop":
            return
        await checked_answer(self._grammar, "".join(self._texts.pop(index)), finish_reason)
