"""The narrow engine interface: plain request/result types and the ``Engine`` protocol.

Everything above ``server/vllm/engine.py`` speaks only these types, so the engine can be
swapped (vLLM on CPU, vLLM on GPU, an honest fake for unit tests) without touching
the HTTP layer or the wrappers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "ChatMessage",
    "Constraint",
    "Engine",
    "EngineInfo",
    "FinishReason",
    "GeneratedChoice",
    "GenerationRequest",
    "GenerationResult",
    "KvCacheReporter",
    "Sampling",
    "Scores",
    "StreamDelta",
    "TokenLogprob",
]

FinishReason = Literal["stop", "length", "abort"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str


@dataclass(frozen=True, slots=True)
class Sampling:
    """Sampling settings. Deterministic (greedy) unless told otherwise."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: int | None = None  # top-k alternatives per generated token; None = off
    repetition_penalty: float = 1.0  # > 1 discourages the loops greedy decoding falls into
    frequency_penalty: float = 0.0  # OpenAI's: by how often a token already appears in the output
    presence_penalty: float = 0.0  # OpenAI's: whether a token already appears in the output
    ignore_eos: bool = False  # generate max_tokens whatever the model says (load tests, benchmarks)


@dataclass(frozen=True, slots=True)
class Constraint:
    """What the output must match, enforced token by token by the engine's grammar backend."""

    kind: Literal["regex", "json"]
    # regex: a regular expression the whole answer must match; json: a JSON Schema (as
    # JSON text) for llguidance, with its options in "x-guidance"
    spec: str


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    request_id: str
    prompt_token_ids: Sequence[int]
    sampling: Sampling = Sampling()
    constraint: Constraint | None = None


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class GeneratedChoice:
    index: int
    text: str
    completion_tokens: int
    finish_reason: FinishReason
    logprobs: tuple[TokenLogprob, ...] | None = None


@dataclass(frozen=True, slots=True)
class GenerationResult:
    choices: tuple[GeneratedChoice, ...]
    prompt_tokens: int
    cached_prompt_tokens: int = 0

    @property
    def completion_tokens(self) -> int:
        return sum(choice.completion_tokens for choice in self.choices)


@dataclass(frozen=True, slots=True)
class Scores:
    """What ``Engine.score`` found: one log-probability per continuation, in order."""

    logprobs: tuple[float, ...]
    cached_prompt_tokens: int = 0  # prompt tokens served from the prefix cache


@dataclass(frozen=True, slots=True)
class StreamDelta:
    """New text of one choice; ``finish_reason`` is set on that choice's last delta."""

    index: int
    text: str
    finish_reason: FinishReason | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0  # running total for this choice
    cached_prompt_tokens: int = 0  # prompt tokens read from the prefix cache


@dataclass(frozen=True, slots=True)
class EngineInfo:
    model_id: str
    max_model_len: int
    device: str
    structured_output_backend: str
    startup_s: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)
    # Token ids a prompt given as ids may hold are below this; None: not checked.
    vocab_size: int | None = None


@runtime_checkable
class KvCacheReporter(Protocol):
    """Optional: an engine that knows how full its KV cache is (for the metrics)."""

    def kv_cache_usage(self) -> float | None:
        """Share of the KV cache in use (0-1), None while unknown."""
        ...


class Engine(Protocol):
    """What the server needs from an inference engine, and nothing more."""

    info: EngineInfo

    async def encode_chat(
        self, messages: Sequence[ChatMessage], *, assistant_prefix: str = "", align_through: str | None = None
    ) -> list[int]:
        """Token ids of a chat rendered with the model's template, ready for the answer.
        Async so that an engine can tokenize off the event loop (long prompts take long).

        ``assistant_prefix`` is text the answer is forced to start with; it is part of
        the prompt, so it costs prefill, not decode steps. ``align_through``, the literal
        start every call's user message shares ('' for none), pads a leading system turn
        (with content the model ignores) so that the prefix calls share ends on a whole
        prefix-cache block: for system turns that repeat across calls (wrappers'), not
        for clients' own chats (None).
        """
        ...

    async def encode_text(self, text: str) -> list[int]: ...

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Run to completion. Cancelling the awaiting task aborts the engine request."""
        ...

    async def score(
        self, request_id: str, prompt_token_ids: Sequence[int], continuations: Sequence[Sequence[int]]
    ) -> Scores:
        """Log-probability of each continuation after the prompt, with the answer held
        to these continuations (as a grammar would hold it).

        Only the tokens where the continuations branch decide (``server/vllm/branching.py``):
        where their first tokens differ, one forward pass scores them all; labels sharing
        a start take one more step per branch point, on the prompt from the prefix cache.
        """
        ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        """Yield text as it is generated. Closing the iterator aborts the engine request."""
        ...

    async def check_health(self) -> None:
        """Raise ``EngineUnavailable`` unless the engine can take requests."""
        ...

    def queue_depth(self) -> int: ...

    async def shutdown(self) -> None: ...
