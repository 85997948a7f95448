"""An ``Engine`` wrapper that every route's engine work goes through: admission + tokens.

Wrapping the engine itself (rather than each route) means native wrapper calls, the
OpenAI routes and batch lines all queue behind the same bound: each generation is
admitted with its exact cost (prompt tokens + max_tokens x n) before it reaches the
engine, so is each scoring step, a stream holds its place until it is closed, and tokens
in and out are counted for the metrics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from server.engine.admission import Admission
from server.engine.protocol import (
    ChatMessage,
    Engine,
    GenerationRequest,
    GenerationResult,
    KvCacheReporter,
    Scores,
    StreamDelta,
)
from server.http.metrics import Metrics

__all__ = ["GuardedEngine"]


def _cost(request: GenerationRequest) -> int:
    return len(request.prompt_token_ids) + request.sampling.max_tokens * request.sampling.n


class GuardedEngine:
    def __init__(self, inner: Engine, admission: Admission, metrics: Metrics) -> None:
        self._inner = inner
        self._admission = admission
        self._metrics = metrics
        self.info = inner.info

    def kv_cache_usage(self) -> float | None:
        inner = self._inner
        return inner.kv_cache_usage() if isinstance(inner, KvCacheReporter) else None

    async def encode_chat(
        self, messages: Sequence[ChatMessage], *, assistant_prefix: str = "", align_through: str | None = None
    ) -> list[int]:
        return await self._inner.encode_chat(
            messages, assistant_prefix=assistant_prefix, align_through=align_through
        )

    async def encode_text(self, text: str) -> list[int]:
        return await self._inner.encode_text(text)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        async with self._admission.admit(_cost(request)):
            result = await self._inner.generate(request)
        self._metrics.tokens_in.inc(result.prompt_tokens)
        self._metrics.tokens_out.inc(result.completion_tokens)
        return result

    async def score(
        self, request_id: str, prompt_token_ids: Sequence[int], continuations: Sequence[Sequence[int]]
    ) -> Scores:
        # Scored calls (sentiment, classify...) queue behind the same bound as generations:
        # the prompt, plus the continuations' tokens (branch points past the first token are
        # scored on the prompt extended by them).
        cost = len(prompt_token_ids) + sum(len(tokens) for tokens in continuations)
        async with self._admission.admit(cost):
            scores = await self._inner.score(request_id, prompt_token_ids, continuations)
        self._metrics.tokens_in.inc(len(prompt_token_ids))
        self._metrics.tokens_out.inc(1)  # the one answer, however many branch points decided it
        return scores

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        async with self._admission.admit(_cost(request)):
            self._metrics.tokens_in.inc(len(request.prompt_token_ids))
            counted: dict[int, int] = {}  # choice -> tokens counted (deltas carry running totals)
            inner = self._inner.stream(request)
            try:
                async for delta in inner:
                    new = delta.completion_tokens - counted.get(delta.index, 0)
                    if new > 0:
                        self._metrics.tokens_out.inc(new)
                        counted[delta.index] = delta.completion_tokens
                    yield delta
            finally:
                closer = getattr(inner, "aclose", None)
                if closer is not None:
                    await closer()  # aborts the engine request when the client went away

    async def check_health(self) -> None:
        await self._inner.check_health()

    def queue_depth(self) -> int:
        return self._inner.queue_depth()

    async def shutdown(self) -> None:
        await self._inner.shutdown()
