"""``POST /v1/completions``: OpenAI's legacy text completion on the local model.

A prompt is text, token ids, or a list of either (one engine request each, all in the
same continuous batch; choice ``index`` is ``prompt_number * n + i`` as OpenAI numbers
them). ``response_format`` is honoured here too, through the same grammar path.
Streaming takes one prompt.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from server.engine.protocol import Engine, GenerationRequest, GenerationResult, StreamDelta
from server.http.middleware.auth import check_raw_model_allowed
from server.limits import Limits, check_unicode
from server.openai import params
from server.openai.logprobs import completion_logprobs_out
from server.openai.protocol import Completion, CompletionChoice, CompletionRequest
from server.openai.streaming import EventStream, first_delta, resumed
from server.openai.structured import output_grammar
from server.state import ServerState, get_state
from server.structured.checked import StreamCheck, generate_checked
from server.structured.grammar import CompiledGrammar
from wrappers.errors import BadRequest

__all__ = ["router"]

router = APIRouter(tags=["openai"])

MAX_LOGPROBS = 5  # OpenAI's bound on this endpoint


async def _prompts(body: CompletionRequest, engine: Engine, limits: Limits) -> list[list[int]]:
    prompt = body.prompt
    if isinstance(prompt, str):
        prompts: list[str | list[int]] = [prompt]
    elif prompt and all(isinstance(item, int) for item in prompt):
        prompts = [list(prompt)]  # type: ignore[arg-type]
    else:
        prompts = list(prompt)  # type: ignore[arg-type]
    if not prompts:
        raise BadRequest("prompt is empty", param="prompt")
    for index, item in enumerate(prompts):
        if isinstance(item, str):
            check_unicode(item, f"prompt.{index}" if len(prompts) > 1 else "prompt")
    if len(prompts) > limits.max_batch_items:
        raise BadRequest(f"{len(prompts)} prompts; at most {limits.max_batch_items}", param="prompt")
    # One prompt at a time: other requests' prompts are tokenized in between.
    if (vocab := engine.info.vocab_size) is not None:  # before any prompt is tokenized
        for ids in (item for item in prompts if not isinstance(item, str)):
            outside = next((token for token in ids if not 0 <= token < vocab), None)
            if outside is not None:
                raise BadRequest(
                    f"token id {outside} is outside the model's vocabulary (0 to {vocab - 1})", param="prompt"
                )
    encoded = [await engine.encode_text(item) if isinstance(item, str) else list(item) for item in prompts]
    if any(not ids for ids in encoded):
        raise BadRequest("prompt is empty", param="prompt")
    return encoded


async def _prepare(
    body: CompletionRequest, state: ServerState, engine: Engine
) -> tuple[list[GenerationRequest], CompiledGrammar | None]:
    limits = state.settings.limits
    if body.echo:
        raise BadRequest("echo is not supported", param="echo")
    if body.suffix:
        raise BadRequest("suffix is not supported", param="suffix")
    if body.logprobs is not None and not 0 <= body.logprobs <= MAX_LOGPROBS:
        raise BadRequest(f"logprobs must be between 0 and {MAX_LOGPROBS}", param="logprobs")
    prompts = await _prompts(body, engine, limits)
    if body.stream and len(prompts) > 1:
        raise BadRequest("streaming takes one prompt", param="prompt")
    longest = max(len(ids) for ids in prompts)
    max_tokens = params.resolve_max_tokens(
        body.max_tokens, longest, engine.info.max_model_len, limits, "max_tokens"
    )
    sampling = params.to_sampling(body, max_tokens=max_tokens, logprobs=body.logprobs, limits=limits)
    grammar = await output_grammar(body.response_format, None, state.grammars)
    constraint = grammar.constraint if grammar else None
    base = f"cmpl-{uuid.uuid4().hex}"
    requests = [GenerationRequest(f"{base}-{i}", ids, sampling, constraint) for i, ids in enumerate(prompts)]
    return requests, grammar


def _completion(
    body: CompletionRequest, requests: list[GenerationRequest], results: list[GenerationResult], model: str
) -> Completion:
    n = requests[0].sampling.n
    top = body.logprobs or 0
    choices = [
        CompletionChoice(
            index=number * n + choice.index,
            text=choice.text,
            finish_reason=choice.finish_reason,
            logprobs=completion_logprobs_out(choice.logprobs, top),
        )
        for number, result in enumerate(results)
        for choice in result.choices
    ]
    return Completion(
        id=requests[0].request_id.rsplit("-", 1)[0],
        created=int(time.time()),
        model=model,
        choices=choices,
        usage=params.usage(sum(r.prompt_tokens for r in results), sum(r.completion_tokens for r in results)),
    )


async def _chunks(
    first: StreamDelta | None,
    stream: AsyncIterator[StreamDelta],
    request: GenerationRequest,
    model: str,
    top: int,
    include_usage: bool,
    check: StreamCheck,
) -> AsyncGenerator[Completion]:
    created = int(time.time())
    stream_id = request.request_id.rsplit("-", 1)[0]
    offsets: dict[int, int] = {}
    produced: dict[int, int] = {}
    async with aclosing(resumed(first, stream)) as deltas:
        async for delta in deltas:
            produced[delta.index] = delta.completion_tokens
            await check.check(delta.index, delta.text, delta.finish_reason)
            if not delta.text and delta.finish_reason is None:
                continue
            offset = offsets.get(delta.index, 0)
            offsets[delta.index] = offset + len(delta.text)
            choice = CompletionChoice(
                index=delta.index,
                text=delta.text,
                finish_reason=delta.finish_reason,
                logprobs=completion_logprobs_out(delta.logprobs, top, offset),
            )
            yield Completion(id=stream_id, created=created, model=model, choices=[choice])
        if include_usage:
            usage = params.usage(len(request.prompt_token_ids), sum(produced.values()))
            yield Completion(id=stream_id, created=created, model=model, choices=[], usage=usage)


async def _generate_all(
    engine: Engine, requests: list[GenerationRequest], grammar: CompiledGrammar | None, resamples: int
) -> list[GenerationResult]:
    """All prompts at once; if one fails (or the caller is cancelled) the others are aborted."""
    tasks = [
        asyncio.ensure_future(generate_checked(engine, request, grammar, resamples)) for request in requests
    ]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()


@router.post("/v1/completions", response_model=None)
async def create_completion(
    body: CompletionRequest, state: Annotated[ServerState, Depends(get_state)], request: Request
) -> Response:
    check_raw_model_allowed(request)
    params.check_model(body.model, state.manifest.id)
    engine = state.require_engine()
    requests, grammar = await _prepare(body, state, engine)
    model = engine.info.model_id
    if body.stream:
        stream = engine.stream(requests[0])
        first = await first_delta(stream)
        include_usage = params.include_usage(body.stream_options)
        check = StreamCheck(grammar)
        events = _chunks(first, stream, requests[0], model, body.logprobs or 0, include_usage, check)
        return EventStream(requests[0].request_id, events)
    results = await _generate_all(engine, requests, grammar, state.settings.limits.max_schema_resamples)
    return JSONResponse(_completion(body, requests, results, model).model_dump(mode="json"))
