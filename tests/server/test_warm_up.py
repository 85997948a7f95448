"""Start-up warm-up, above the engine: which first calls it makes, and how many at once.

The engine here is a byte-level stand-in that implements the ``Engine`` interface honestly
(prompts are their UTF-8 bytes, a generation emits one character per token, scoring gives
every label the same log-probability) and records how many of its calls overlap; what is
tested is the service's own scheduling, not a model.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest

from server.engine.admission import Admission
from server.engine.protocol import (
    ChatMessage,
    EngineInfo,
    FinishReason,
    GeneratedChoice,
    GenerationRequest,
    GenerationResult,
    Scores,
    StreamDelta,
)
from server.invocation.decoding import DecodeSettings
from server.invocation.service import WrapperService
from server.limits import Limits
from server.structured.grammar import GrammarCompiler
from wrappers.catalogue import BUILTINS
from wrappers.registry import WrapperRegistry


class _BytesEngine:
    def __init__(self, device: str) -> None:
        self.info = EngineInfo(
            model_id="bytes", max_model_len=32_768, device=device, structured_output_backend="outlines"
        )
        self.running = 0
        self.overlap_at_start: list[int] = []  # engine calls already running when each one began

    async def encode_chat(
        self, messages: Sequence[ChatMessage], *, assistant_prefix: str = "", align_through: str | None = None
    ) -> list[int]:
        return list(
            "".join(f"{m.role}\n{m.content}\n" for m in messages).encode() + assistant_prefix.encode()
        )

    async def encode_text(self, text: str) -> list[int]:
        return list(text.encode())

    async def _step(self) -> None:
        self.overlap_at_start.append(self.running)
        self.running += 1
        try:
            await asyncio.sleep(0.01)  # a forward pass: other calls may join meanwhile
        finally:
            self.running -= 1

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        await self._step()
        text = "x" * request.sampling.max_tokens
        finish: FinishReason = "length"  # warm-up asks for one token: never a whole answer
        return GenerationResult((GeneratedChoice(0, text, len(text), finish),), len(request.prompt_token_ids))

    async def score(
        self, request_id: str, prompt_token_ids: Sequence[int], continuations: Sequence[Sequence[int]]
    ) -> Scores:
        await self._step()
        return Scores(tuple(0.0 for _ in continuations))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        result = await self.generate(request)
        choice = result.choices[0]
        yield StreamDelta(
            index=0,
            text=choice.text,
            finish_reason=choice.finish_reason,
            completion_tokens=choice.completion_tokens,
        )

    async def check_health(self) -> None:
        return None

    def queue_depth(self) -> int:
        return self.running

    async def shutdown(self) -> None:
        return None


@pytest.fixture(scope="module")
def grammars() -> Iterator[GrammarCompiler]:
    compiler = GrammarCompiler()
    yield compiler
    compiler.shutdown()


def _service(grammars: GrammarCompiler, engine: _BytesEngine) -> WrapperService:
    limits = Limits()
    return WrapperService(
        WrapperRegistry(BUILTINS),
        grammars,
        lambda: engine,
        limits,
        DecodeSettings(),
        admission=Admission(limits),
    )


@pytest.mark.parametrize("device", ["cpu", "cuda"])
async def test_warm_up_batches_first_calls_and_on_cuda_repeats_each_alone(
    grammars: GrammarCompiler, device: str
) -> None:
    engine = _BytesEngine(device)
    warm = await _service(grammars, engine).warm_up(engine)
    wrappers = sum(1 for wrapper in BUILTINS if wrapper.examples)
    passes = 2 if device == "cuda" else 1
    assert (warm.first_calls, warm.failed) == (passes * wrappers, 0)
    batched, alone = engine.overlap_at_start[:wrappers], engine.overlap_at_start[wrappers:]
    assert max(batched) > 0  # the first pass runs as one batch
    # On a GPU, Triton builds separate kernels for a batch of one: a second pass, one at a time.
    assert alone == ([0] * wrappers if device == "cuda" else [])
