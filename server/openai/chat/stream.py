"""Engine deltas -> ``chat.completion.chunk`` events (one ``id`` and ``created`` for all).

Text streams as it is generated. A forced tool call is sent whole once its choice
finishes (its arguments are only known to be complete then). With
``stream_options.include_usage`` a last chunk with no choices carries the usage.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

from server.engine.protocol import StreamDelta
from server.openai import params
from server.openai.chat.serving import PreparedChat, tool_calls_in
from server.openai.logprobs import chat_logprobs_out
from server.openai.protocol import ChatCompletionChunk, ChunkChoice, Delta, ToolCallDelta, Usage
from server.openai.streaming import resumed
from server.structured.checked import StreamCheck

__all__ = ["chat_chunks"]


def _tool_call_choices(
    index: int, text: str, finish_reason: str, prepared: PreparedChat
) -> list[ChunkChoice]:
    calls = tool_calls_in(text, finish_reason, prepared)
    if not calls:
        return [ChunkChoice(index=index, delta=Delta(content=text), finish_reason=finish_reason)]
    deltas = [
        ToolCallDelta(index=number, id=call.id, type="function", function=call.function)
        for number, call in enumerate(calls)
    ]
    return [
        ChunkChoice(index=index, delta=Delta(tool_calls=deltas)),
        ChunkChoice(
            index=index,
            delta=Delta(),
            finish_reason="tool_calls" if finish_reason == "stop" else finish_reason,
        ),
    ]


async def chat_chunks(
    first: StreamDelta | None,
    stream: AsyncIterator[StreamDelta],
    prepared: PreparedChat,
    *,
    include_usage: bool,
) -> AsyncGenerator[ChatCompletionChunk]:
    created = int(time.time())
    request = prepared.request

    def chunk(choices: list[ChunkChoice], usage: Usage | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=request.request_id, created=created, model=prepared.model, choices=choices, usage=usage
        )

    forced = prepared.tools is not None and bool(prepared.tools.forced)
    buffers: dict[int, list[str]] = {}
    completion_tokens: dict[int, int] = {}
    prompt_tokens = len(request.prompt_token_ids)
    cached_tokens = 0
    check = StreamCheck(prepared.grammar)
    async with aclosing(resumed(first, stream)) as deltas:
        roles = [
            ChunkChoice(index=i, delta=Delta(role="assistant", content="")) for i in range(request.sampling.n)
        ]
        yield chunk(roles)
        async for delta in deltas:
            completion_tokens[delta.index] = delta.completion_tokens
            cached_tokens = max(cached_tokens, delta.cached_prompt_tokens)
            await check.check(delta.index, delta.text, delta.finish_reason)
            if forced:
                buffers.setdefault(delta.index, []).append(delta.text)
                if delta.finish_reason is not None:
                    text = "".join(buffers.pop(delta.index))
                    for choice in _tool_call_choices(delta.index, text, delta.finish_reason, prepared):
                        yield chunk([choice])
                continue
            if not delta.text and delta.finish_reason is None and not delta.logprobs:
                continue
            choice = ChunkChoice(
                index=delta.index,
                delta=Delta(content=delta.text),
                logprobs=chat_logprobs_out(delta.logprobs, prepared.top_logprobs),
                finish_reason=delta.finish_reason,
            )
            yield chunk([choice])
        if include_usage:
            completion = sum(completion_tokens.values())
            yield chunk([], params.usage(prompt_tokens, completion, cached_tokens))
