"""Running wrappers: validate input, render, constrain, generate, parse, validate output.

Shared by the native routes, the OpenAI ``wrapper:NAME`` models and batch jobs, so
every way of calling a wrapper gets the same guarantees, and the same releases: a
channel name (``sentiment@stable``) is routed here, calibrated scores are applied here,
and a channel's shadow version is started here (``server/releases/``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.engine.admission import Admission
from server.engine.protocol import ChatMessage, Engine, Sampling
from server.invocation.decoding import DecodeMode, Decoder, DecodeSettings
from server.limits import Limits, check_engine_int, check_unicode
from server.releases.channels import Releases, Route
from server.releases.shadow import ShadowRunner
from server.structured.checked import checked_answer, resample_sampling
from server.structured.grammar import CompiledGrammar, GrammarCompiler
from wrappers.base import Wrapper
from wrappers.errors import BadRequest, OutputInvalid, OutputTruncated, WrapserveError
from wrappers.registry import WrapperRegistry

__all__ = ["InputInvalid", "Invocation", "InvokeOptions", "WarmUp", "WrapperService"]

log = logging.getLogger("wrapserve.wrappers")


class InputInvalid(BadRequest):
    status = 422
    code = "invalid_input"


class InvokeOptions(BaseModel):
    """Per-call overrides of a wrapper's sampling defaults."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    decode: DecodeMode = Field(
        default="auto",
        description="auto: label scoring for one-choice outputs, else forced-prefix decoding; "
        "score, generate (forced prefix) or plain (token by token) force one way.",
    )


@dataclass(frozen=True)
class Invocation:
    wrapper: type[Wrapper]
    output: Any
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    latency_ms: float
    scores: dict[str, float] | None = None  # label -> probability, for scored choice outputs
    cached_prompt_tokens: int = 0  # of prompt_tokens, served from the engine's prefix cache
    calibrated: bool = False  # scores temperature-scaled by the releases file's calibration
    raw_scores: dict[str, float] | None = None  # the model's own scores, when calibrated
    abstained: bool | None = None  # set when the calibration has an abstain threshold
    channel: str | None = None  # the release channel that chose this version

    def as_json(self) -> dict[str, Any]:
        extra: dict[str, Any] = {} if self.scores is None else {"scores": self.scores}
        if self.calibrated:
            extra.update(calibrated=True, raw_scores=self.raw_scores)  # raw: what a new fit starts from
        if self.abstained is not None:
            extra["abstained"] = self.abstained
        if self.channel is not None:
            extra["channel"] = self.channel
        return {
            "output": self.output,
            "wrapper": self.wrapper.name,
            "version": self.wrapper.version,
            "fingerprint": self.wrapper.fingerprint(),
            "model": self.model,
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "cached_prompt_tokens": self.cached_prompt_tokens,
            },
            "finish_reason": self.finish_reason,
            "latency_ms": round(self.latency_ms, 2),
            **extra,
        }


def _field_path(location: Sequence[int | str]) -> str:
    return ".".join(["input", *(str(part) for part in location)])


class WrapperService:
    def __init__(
        self,
        registry: WrapperRegistry,
        grammars: GrammarCompiler,
        engine: Callable[[], Engine],
        limits: Limits,
        decoding: DecodeSettings | None = None,
        admission: Admission | None = None,
        releases: Releases | None = None,
        shadow: ShadowRunner | None = None,
    ) -> None:
        self.registry = registry
        self.grammars = grammars
        self._engine = engine
        self._limits = limits
        self.decoder = Decoder(decoding)
        self._admission = admission or Admission(limits)
        self.releases = releases or Releases(None, registry)
        self.shadow = shadow
        self.answers: Counter[tuple[str, str, str]] = Counter()  # (wrapper, version, channel), for /metrics

    # -- routing -------------------------------------------------------------------------

    def route(
        self, ref: str, version: str | None = None, route_key: str | None = None
    ) -> tuple[type[Wrapper], Route]:
        """``name``, ``name@1.2`` or ``name@CHANNEL`` (or ``version`` given apart) to a served
        wrapper, and the route that chose it (its channel and shadow)."""
        name, _, pinned = ref.partition("@")
        served = self.registry.versions(name)[0].name  # an unknown name is a 404 before any channel
        route = self.releases.route(served, version or pinned or None, route_key)
        return self.registry.resolve(served, route.version), route

    async def invoke_routed(
        self,
        wrapper: type[Wrapper],
        route: Route,
        raw_input: Any,
        options: InvokeOptions | None = None,
        *,
        owner: str | None = None,
    ) -> Invocation:
        """One call as routed: the served answer, counted; the channel's shadow started beside it.

        ``owner``: the caller's API key digest; the recorded shadow comparison is theirs to read.
        """
        invocation = replace(await self.invoke(wrapper, raw_input, options), channel=route.channel)
        self.answers[(wrapper.name, wrapper.version, route.channel or "")] += 1
        if route.shadow and route.shadow != wrapper.version and self.shadow is not None:
            candidate = self.registry.resolve(wrapper.name, route.shadow)
            self.shadow.submit(
                lambda: self.invoke(candidate, raw_input, options),
                wrapper=wrapper.name,
                channel=route.channel or "",
                served_version=wrapper.version,
                candidate_version=candidate.version,
                raw_input=raw_input,
                served_output=invocation.output,
                owner=owner,
            )
        return invocation

    # -- one call ------------------------------------------------------------------------

    def parse_input(self, wrapper: type[Wrapper], raw: Any) -> BaseModel:
        try:
            return wrapper.Input.model_validate(raw)
        except ValidationError as error:
            first = error.errors()[0]
            param = _field_path(first["loc"])
            raise InputInvalid(f"{param}: {first['msg']}", param=param) from None

    def _sampling(self, wrapper: type[Wrapper], options: InvokeOptions | None) -> Sampling:
        options = options or InvokeOptions()
        check_engine_int(options.seed, "options.seed")
        max_tokens = options.max_tokens or wrapper.sampling.max_tokens
        if max_tokens > self._limits.max_tokens:
            raise BadRequest(
                f"max_tokens {max_tokens} exceeds the limit {self._limits.max_tokens}",
                param="options.max_tokens",
            )
        return Sampling(
            max_tokens=max_tokens,
            temperature=wrapper.sampling.temperature if options.temperature is None else options.temperature,
            top_p=options.top_p or wrapper.sampling.top_p,
            seed=options.seed,
            frequency_penalty=wrapper.sampling.frequency_penalty,
            repetition_penalty=wrapper.sampling.repetition_penalty,
        )

    async def invoke(
        self,
        wrapper: type[Wrapper],
        raw_input: Any,
        options: InvokeOptions | None = None,
        *,
        engine: Engine | None = None,  # given during warm-up, before the server reports ready
        resample: bool = True,
    ) -> Invocation:
        started = time.perf_counter()
        data = self.parse_input(wrapper, raw_input)
        sampling = self._sampling(wrapper, options)
        mode = options.decode if options is not None else "auto"
        schema = wrapper.output_schema(data)
        plan = self.decoder.plan(mode, schema)
        # Scored labels need a validator, not a grammar; decoded outputs prefer outlines' regex.
        grammar = await self.grammars.compile(schema, prefer="validator" if plan.choice else "regex")
        engine = engine or self._engine()
        messages = [ChatMessage(role=m.role, content=m.content) for m in wrapper.messages(data)]
        for message in messages:
            check_unicode(message.content, "input")
        decoded = await self.decoder.run(engine, messages, grammar, sampling, plan, wrapper.user_head())
        # An answer cut off or invalid is generated again (server/structured/checked.py);
        # scored labels are exact, and warm-up's one-token calls are cut off on purpose.
        attempts = 0 if plan.choice is not None or not resample else self._limits.max_schema_resamples
        for attempt in range(1, attempts + 2):
            try:
                output = await self._parse_output(wrapper, data, grammar, decoded.text, decoded.finish_reason)
                break
            except OutputInvalid:
                if attempt > attempts:
                    raise
            again = resample_sampling(sampling, attempt)
            decoded = await self.decoder.run(engine, messages, grammar, again, plan, wrapper.user_head())
        raw_scores = scores = decoded.scores
        abstained = None
        calibrated = raw_scores and self.releases.calibrate(
            wrapper.name, wrapper.version, engine.info.model_id, raw_scores
        )
        if calibrated:
            scores, abstained = calibrated.scores, calibrated.abstained
        return Invocation(
            wrapper=wrapper,
            output=output,
            model=engine.info.model_id,
            prompt_tokens=decoded.prompt_tokens,
            completion_tokens=decoded.completion_tokens,
            finish_reason=decoded.finish_reason,
            latency_ms=(time.perf_counter() - started) * 1000,
            scores=scores,
            cached_prompt_tokens=decoded.cached_prompt_tokens,
            calibrated=bool(calibrated),
            raw_scores=raw_scores if calibrated else None,
            abstained=abstained,
        )

    async def _parse_output(
        self, wrapper: type[Wrapper], data: BaseModel, grammar: CompiledGrammar, text: str, finish_reason: str
    ) -> Any:
        if finish_reason == "length":
            raise OutputTruncated(
                "the answer hit the token limit before it was complete; raise options.max_tokens",
                raw_output=text,
                finish_reason=finish_reason,
            )
        value = await checked_answer(grammar, text, finish_reason)
        try:
            parsed = wrapper.parse_output(data, value)
        except ValidationError as error:
            raise OutputInvalid(
                f"the answer does not validate: {error.errors()[0]['msg']}", raw_output=text
            ) from None
        return parsed.model_dump(mode="json", by_alias=True)

    # -- many calls ----------------------------------------------------------------------

    async def invoke_many(
        self,
        wrapper: type[Wrapper],
        inputs: Sequence[Any],
        options: InvokeOptions | None = None,
        route: Route | None = None,
    ) -> list[Invocation | WrapserveError]:
        """All items go to the engine at once (one continuous batch); errors stay per item."""
        if len(inputs) > self._limits.max_batch_items:
            raise BadRequest(
                f"{len(inputs)} inputs; a batch holds at most {self._limits.max_batch_items}", param="inputs"
            )
        estimate = len(inputs) * self._sampling(wrapper, options).max_tokens
        async with self._admission.admit_group(estimate, len(inputs)):  # the batch queues as one
            results = await asyncio.gather(
                *(self.invoke(wrapper, item, options) for item in inputs), return_exceptions=True
            )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, WrapserveError):
                raise result
        channel = route.channel if route else None
        answered = [replace(r, channel=channel) if isinstance(r, Invocation) else r for r in results]
        self.answers[(wrapper.name, wrapper.version, channel or "")] += sum(
            isinstance(r, Invocation) for r in answered
        )
        return answered  # type: ignore[return-value]

    # -- start-up ------------------------------------------------------------------------

    async def warm_up(self, engine: Engine) -> WarmUp:
        """Compile every wrapper's grammar and make its first call as fast as its hundredth.

        Each wrapper with an example is called once on it, the way a real first call runs
        (label scoring or forced-prefix decoding), but stopped after one token: vLLM builds
        and caches the grammar index, keeps the prompt's static part (instructions, schema,
        examples) in its prefix cache, and runs each code path once.
        """
        started = time.perf_counter()
        await asyncio.to_thread(self.grammars.warm_up)
        for wrapper in self.registry:
            if (schema := wrapper.static_schema()) is not None:  # also for decode modes not warmed
                await self.grammars.compile(schema, prefer="regex")
        warmed = [wrapper for wrapper in self.registry if wrapper.examples]

        def first_call(wrapper: type[Wrapper]) -> Awaitable[Any]:
            options = InvokeOptions(max_tokens=1)
            return self.invoke(wrapper, wrapper.examples[0].input, options, engine=engine, resample=False)

        failed = 0
        # One group for the queue bound: the bound is for callers, and a small one
        # (WRAPSERVE_LIMITS__MAX_QUEUED_REQUESTS=4) would otherwise refuse most warm-up calls.
        async with self._admission.admit_group(len(warmed), len(warmed)):
            outcomes = await asyncio.gather(*map(first_call, warmed), return_exceptions=True)
            if engine.info.device == "cuda":
                # The calls above ran as one batch. Triton specialises integer arguments equal
                # to 1, so on a GPU a lone request's kernels (logprobs among them) are built by
                # the first lone call: make those calls here, one at a time.
                for wrapper in warmed:
                    try:
                        outcomes.append(await first_call(wrapper))
                    except Exception as error:  # counted below, like the batched calls' errors
                        outcomes.append(error)
        for outcome in outcomes:
            if isinstance(outcome, OutputTruncated):
                continue  # the expected end of a one-token call
            if isinstance(outcome, WrapserveError):  # e.g. an index slow to build on a busy machine
                failed += 1
                log.warning("warm-up: %s (built on first use instead)", outcome.message)
            elif isinstance(outcome, BaseException):
                raise outcome
        return WarmUp(time.perf_counter() - started, len(outcomes), failed)


@dataclass(frozen=True)
class WarmUp:
    seconds: float
    first_calls: int
    failed: int
