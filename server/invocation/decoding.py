"""How a wrapper call's answer is produced: choice scoring, forced prefix, or plain decoding.

Three ways, fastest first, each exact for what it covers:

- ``score``: the output is one object with a single field whose value is one label out of
  a set (sentiment, classify, intent...). The labels are scored from the model's
  log-probabilities in one forward pass instead of a decode loop, and each label gets a
  real probability (softmax over the labels' log-probs).
- ``generate``: constrained decoding, with the grammar's forced opening (e.g. ``{"label":"``)
  put into the prompt as the start of the assistant turn, so it costs prefill, not decode
  steps; the engine enforces the remainder of the regex on what follows.
- ``plain``: constrained decoding token by token from the first character, as a general
  server does it (kept for measurements and as the fallback).

``auto`` (the default) picks ``score`` for choice outputs when enabled, else ``generate``
when enabled, else ``plain``.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any, Literal

from server.engine.protocol import ChatMessage, Constraint, Engine, GenerationRequest, Sampling
from server.limits import check_prompt_fits
from server.structured.forced import ForcedPrefix, split_forced_prefix
from server.structured.grammar import CompiledGrammar
from wrappers.errors import BadRequest

__all__ = [
    "ChoiceField",
    "DecodeMode",
    "DecodePlan",
    "DecodeSettings",
    "DecodeWay",
    "Decoded",
    "Decoder",
    "choice_field",
]

DecodeMode = Literal["auto", "score", "generate", "plain"]


@dataclass(frozen=True)
class DecodeSettings:
    """Which speed-ups ``auto`` may use (all on by default; see ``Settings``)."""

    forced_prefix: bool = True
    choice_scoring: bool = True
    align_prefix: bool = True  # the prefix wrapper calls share padded to whole prefix-cache blocks


@dataclass(frozen=True)
class Decoded:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    scores: dict[str, float] | None = None
    cached_prompt_tokens: int = 0


class DecodeWay(StrEnum):
    """A concrete way of answering one call (``auto`` resolved)."""

    SCORE = "score"
    GENERATE = "generate"
    PLAIN = "plain"


@dataclass(frozen=True)
class ChoiceField:
    """An output that is ``{"<name>": <one of labels>}`` and nothing else."""

    name: str
    labels: tuple[str, ...]

    @property
    def prefix(self) -> str:
        return "{" + json.dumps(self.name, ensure_ascii=False) + ':"'

    def continuation(self, label: str) -> str:
        return json.dumps(label, ensure_ascii=False)[1:] + "}"


@dataclass(frozen=True)
class DecodePlan:
    """One call's decode plan, decided once: the way, and the labels when it scores them."""

    way: DecodeWay
    choice: ChoiceField | None = None


def choice_field(schema: dict[str, Any]) -> ChoiceField | None:
    """The single enum-of-strings field of a one-field object schema, or None."""
    properties = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(properties, dict) or len(properties) != 1:
        return None
    ((name, field),) = properties.items()
    if schema.get("required") != [name] or not isinstance(field, dict):
        return None
    labels = field.get("enum")
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(v, str) for v in labels):
        return None
    if set(field) - {"enum", "type", "title", "description"} or field.get("type", "string") != "string":
        return None
    return ChoiceField(name, tuple(labels))


@lru_cache(maxsize=1024)
def _forced(regex: str) -> ForcedPrefix:
    return split_forced_prefix(regex)


def _softmax(logprobs: Sequence[float]) -> list[float]:
    top = max(logprobs)
    weights = [math.exp(value - top) for value in logprobs]
    total = sum(weights)
    return [weight / total for weight in weights]


class Decoder:
    """Runs one call's decoding on the engine, the way the mode and settings say."""

    def __init__(self, settings: DecodeSettings | None = None) -> None:
        self.settings = settings or DecodeSettings()

    def plan(self, mode: DecodeMode, schema: dict[str, Any]) -> DecodePlan:
        """How this call is answered, decided once: ``auto`` becomes a concrete way."""
        field = choice_field(schema)
        if mode == "score" and field is None:
            raise BadRequest(
                "options.decode 'score' needs an output that is one label out of a set",
                param="options.decode",
            )
        if field is not None and (mode == "score" or (mode == "auto" and self.settings.choice_scoring)):
            return DecodePlan(DecodeWay.SCORE, field)
        if mode == "auto":
            return DecodePlan(DecodeWay.GENERATE if self.settings.forced_prefix else DecodeWay.PLAIN)
        return DecodePlan(DecodeWay(mode))

    def constraint(self, grammar: CompiledGrammar, way: DecodeWay) -> tuple[str, Constraint]:
        """(text put into the prompt, constraint on the rest) for a decoding way."""
        if grammar.constraint is None:
            raise ValueError("a validator-only grammar cannot be decoded")
        if way is DecodeWay.GENERATE and grammar.regex:
            forced = _forced(grammar.regex)
            if forced and forced.remainder:
                return forced.prefix, Constraint(kind="regex", spec=forced.remainder)
        return "", grammar.constraint

    async def run(
        self,
        engine: Engine,
        messages: Sequence[ChatMessage],
        grammar: CompiledGrammar,
        sampling: Sampling,
        plan: DecodePlan,
        user_head: str = "",
    ) -> Decoded:
        """``user_head``: the literal start of the user message every call of this wrapper shares."""
        align = user_head if self.settings.align_prefix else None
        if plan.choice is not None:
            return await self._score(engine, messages, plan.choice, sampling, align)
        prefix, constraint = self.constraint(grammar, plan.way)
        prompt = await engine.encode_chat(messages, assistant_prefix=prefix, align_through=align)
        check_prompt_fits(len(prompt), sampling.max_tokens, engine.info.max_model_len)
        result = await engine.generate(
            GenerationRequest(f"wrp-{uuid.uuid4().hex}", prompt, sampling, constraint)
        )
        choice = result.choices[0]
        return Decoded(
            text=prefix + choice.text,
            finish_reason=choice.finish_reason,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cached_prompt_tokens=result.cached_prompt_tokens,
        )

    async def _score(
        self,
        engine: Engine,
        messages: Sequence[ChatMessage],
        field: ChoiceField,
        sampling: Sampling,
        align: str | None,
    ) -> Decoded:
        prompt = await engine.encode_chat(messages, assistant_prefix=field.prefix, align_through=align)
        check_prompt_fits(len(prompt), 1, engine.info.max_model_len)
        continuations = [await engine.encode_text(field.continuation(label)) for label in field.labels]
        scored = await engine.score(f"wrp-{uuid.uuid4().hex}", prompt, continuations)
        logprobs = list(scored.logprobs)
        probabilities = _softmax(logprobs)
        if sampling.temperature > 0:
            # Sample from the labels' distribution at the requested temperature.
            tempered = _softmax([value / sampling.temperature for value in logprobs])
            index = random.Random(sampling.seed).choices(range(len(tempered)), weights=tempered)[0]
        else:
            index = max(range(len(probabilities)), key=probabilities.__getitem__)
        label = field.labels[index]
        return Decoded(
            text=field.prefix + field.continuation(label),
            finish_reason="stop",
            prompt_tokens=len(prompt),
            completion_tokens=1,  # the one engine step that scored every label
            scores={name: round(p, 6) for name, p in zip(field.labels, probabilities, strict=True)},
            cached_prompt_tokens=scored.cached_prompt_tokens,
        )
