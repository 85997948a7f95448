"""An honest fake ``Engine``: a tiny deterministic "model" over a character vocabulary.

In the spirit of httpx's ``MockTransport``: it really implements the interface, so the
code above the engine (routes, the wrapper service, batches, admission) can be tested
fast and without vLLM, and nothing in it is a canned answer.

- A token is one character (its code point is its id); prompts are rendered with a
  plain role-tagged template.
- Under a regex constraint, text is walked through the regex's automaton (outlines_core's
  ``Index``) along a shortest path to an accepting state, ties broken by a seeded hash.
  Under a JSON Schema constraint, llguidance's matcher (as vLLM's guidance backend runs
  it) masks a byte vocabulary each step, and the fake picks the allowed byte that closes
  soonest (end, bracket, quote, comma) or else one by a seeded hash. Either way every
  finished answer matches the constraint.
- Without one, it writes seeded pseudo-words until its own end or ``max_tokens``.
- ``max_tokens`` ends a choice with ``finish_reason: "length"``, a ``stop`` string with
  ``"stop"`` (the stop string left out), ``n`` gives ``n`` choices with seeds
  ``seed + i``; closing a stream or cancelling a call aborts the request
  (``queue_depth`` counts the ones still running, ``aborted`` lists the aborted ids).
- ``score`` gives each continuation the summed log-probability of a fixed hash model.
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import llguidance
import llguidance.torch as llguidance_torch
from outlines_core import Index, Vocabulary

from server.engine.protocol import (
    ChatMessage,
    Constraint,
    Engine,
    EngineInfo,
    FinishReason,
    GeneratedChoice,
    GenerationRequest,
    GenerationResult,
    Scores,
    StreamDelta,
)
from server.structured.digits import DigitBound
from wrappers.errors import BadRequest, EngineUnavailable

__all__ = ["FakeEngine", "byte_tokenizer"]

_EOS = 0
_CHARS = [chr(code) for code in range(32, 127)] + ["\n"]
_WORDS = ("alpha", "beta", "gamma", "delta", "echo", "fox", "golf", "hotel", "india", "juliet")


def _hash(*parts: object) -> int:
    digest = hashlib.blake2b(repr(parts).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True)
class _Automaton:
    index: Index
    distance: dict[int, int]  # state -> fewest tokens to an accepting state


@lru_cache(maxsize=256)
def _automaton(regex: str) -> _Automaton:
    try:
        index = Index(regex, Vocabulary(_EOS, {char: [ord(char)] for char in _CHARS}))
    except ValueError as error:
        raise BadRequest(f"the output grammar cannot be built: {error}") from None
    transitions = index.get_transitions()
    reverse: dict[int, list[int]] = {}
    for state, edges in transitions.items():
        for token, target in edges.items():
            if token != _EOS:
                reverse.setdefault(target, []).append(state)
    distance = {state: 0 for state in index.get_final_states()}
    queue = deque(distance)
    while queue:
        state = queue.popleft()
        for previous in reverse.get(state, ()):
            if previous not in distance:
                distance[previous] = distance[state] + 1
                queue.append(previous)
    return _Automaton(index, distance)


class _ByteTokenizer:
    """What ``llguidance.TokenizerWrapper`` reads: one token per byte, then the end token."""

    def __init__(self) -> None:
        self.eos_token_id = 256
        self.bos_token_id = None
        self.tokens = [bytes([value]) for value in range(256)] + [b"<eos>"]
        self.special_token_ids = [256]

    def __call__(self, text: str | bytes) -> list[int]:
        return list(text if isinstance(text, bytes) else text.encode())


@lru_cache(maxsize=1)
def byte_tokenizer() -> llguidance.LLTokenizer:
    """llguidance's view of the fake's byte vocabulary (tests of grammar code use it too)."""
    return llguidance.LLTokenizer(llguidance.TokenizerWrapper(_ByteTokenizer()))


# Preferred bytes, in order: outside a string, close what is open; inside one, end it.
_CLOSING = tuple(ord(char) for char in '}]",')
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


def _json_constrained(spec: str, seed: int) -> Iterator[str]:
    """Characters an llguidance matcher over a byte vocabulary allows, closing soonest."""
    tokenizer = byte_tokenizer()
    matcher = llguidance.LLMatcher(
        tokenizer, llguidance.LLMatcher.grammar_from_json_schema(spec), log_level=0
    )
    if matcher.is_error():
        raise BadRequest(f"the output grammar cannot be built: {matcher.get_error()}")
    bitmask = llguidance_torch.allocate_token_bitmask(1, tokenizer.vocab_size)
    bound = DigitBound(tokenizer)  # as the engine's plugin bounds numbers (server/vllm/plugins)
    decoder = codecs.getincrementaldecoder("utf-8")()
    step, in_string, escaped = 0, False, False
    while not matcher.is_stopped():
        llguidance_torch.fill_next_token_bitmask(matcher, bitmask, 0)
        bound.narrow(bitmask, 0)
        words = bitmask[0].tolist()
        allowed = [token for token in range(tokenizer.vocab_size) if words[token // 32] >> (token % 32) & 1]
        if not allowed or tokenizer.eos_token in allowed:
            return
        preferred = (_QUOTE,) if in_string and not escaped else () if in_string else _CLOSING
        token = next((t for t in preferred if t in allowed), min(allowed, key=lambda t: _hash(seed, step, t)))
        matcher.consume_token(token)
        bound.consume([token])
        if escaped:
            escaped = False
        elif token == _BACKSLASH and in_string:
            escaped = True
        elif token == _QUOTE:
            in_string = not in_string
        if text := decoder.decode(bytes([token])):
            yield text
        step += 1


def _constrained(constraint: Constraint, seed: int) -> Iterator[str]:
    """Characters along a shortest accepted path of the constraint's regex."""
    if constraint.kind == "json":
        yield from _json_constrained(constraint.spec, seed)
        return
    automaton = _automaton(constraint.spec)
    state = automaton.index.get_initial_state()
    if state not in automaton.distance:
        raise BadRequest("the output grammar accepts no text made of this engine's characters")
    step = 0
    while automaton.distance[state] > 0:
        here = automaton.distance[state]
        closer = {  # token -> the state it leads to, for tokens one step nearer an accepting state
            token: target
            for token in automaton.index.get_allowed_tokens(state)
            if token != _EOS
            and automaton.distance.get(target := automaton.index.get_next_state(state, token), here) < here
        }
        token = min(closer, key=lambda t: _hash(seed, step, t))
        yield chr(token)
        state = closer[token]
        step += 1


def _free(seed: int, prompt_hash: int) -> Iterator[str]:
    words = 3 + _hash(seed, prompt_hash) % 6
    text = " ".join(_WORDS[_hash(seed, prompt_hash, i) % len(_WORDS)] for i in range(words)) + "."
    yield from text


class FakeEngine:
    """A deterministic engine for tests above the engine seam (see the module docstring)."""

    def __init__(self, model_id: str = "fake", max_model_len: int = 4096, step_s: float = 0.0) -> None:
        self.info = EngineInfo(
            model_id=model_id,
            max_model_len=max_model_len,
            device="fake",
            structured_output_backend="fake",
            vocab_size=max(ord(char) for char in _CHARS) + 1,
        )
        self._step_s = step_s  # seconds per decode step (0: just yield to the event loop)
        self._running: set[str] = set()
        self.aborted: list[str] = []
        self.stopped = False

    # -- prompts ---------------------------------------------------------------------

    async def encode_chat(
        self, messages: Sequence[ChatMessage], *, assistant_prefix: str = "", align_through: str | None = None
    ) -> list[int]:
        """``align_through`` is accepted and ignored: this engine has no prefix cache."""
        text = (
            "".join(f"<|{m.role}|>\n{m.content}\n" for m in messages) + "<|assistant|>\n" + assistant_prefix
        )
        return [ord(char) for char in text]

    async def encode_text(self, text: str) -> list[int]:
        return [ord(char) for char in text]

    # -- generation ------------------------------------------------------------------

    def _check(self, request: GenerationRequest) -> None:
        if self.stopped:
            raise EngineUnavailable("the inference engine has stopped; restart the server")
        if request.request_id in self._running:
            raise BadRequest(f"request id {request.request_id!r} is already running")

    def _choice_chars(self, request: GenerationRequest, index: int) -> Iterator[str]:
        seed = (request.sampling.seed or 0) + index
        if request.constraint is not None:
            return _constrained(request.constraint, seed)
        return _free(seed, _hash(tuple(request.prompt_token_ids)))

    def _choice(self, request: GenerationRequest, index: int) -> tuple[str, FinishReason]:
        """One choice's whole text and finish reason: the stop string (left out) or
        ``max_tokens``, whichever comes first, else the text's own end."""
        sampling = request.sampling
        text = ""
        for char in self._choice_chars(request, index):
            text += char
            if stopped := next((s for s in sampling.stop if text.endswith(s)), None):
                return text[: -len(stopped)], "stop"
            if len(text) >= sampling.max_tokens:
                return text, "length"
        return text, "stop"

    async def _run_choice(
        self, request: GenerationRequest, index: int
    ) -> AsyncIterator[tuple[str, FinishReason | None]]:
        """(new text, finish reason on the last piece) for one choice, a token at a time."""
        text, finish = self._choice(request, index)
        for position, char in enumerate(text):
            await asyncio.sleep(self._step_s)
            yield char, finish if position == len(text) - 1 else None
        if not text:
            await asyncio.sleep(self._step_s)
            yield "", finish

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        choices = []
        async with self._tracked(request):
            for index in range(request.sampling.n):
                pieces: list[str] = []
                finish: FinishReason = "stop"
                async for text, reason in self._run_choice(request, index):
                    pieces.append(text)
                    finish = reason or finish
                text = "".join(pieces)
                choices.append(GeneratedChoice(index, text, len(text), finish))
        return GenerationResult(tuple(choices), len(request.prompt_token_ids))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        async with self._tracked(request):
            for index in range(request.sampling.n):
                tokens = 0
                async for text, reason in self._run_choice(request, index):
                    tokens += len(text)
                    yield StreamDelta(
                        index=index,
                        text=text,
                        finish_reason=reason,
                        prompt_tokens=len(request.prompt_token_ids),
                        completion_tokens=tokens,
                    )

    def _tracked(self, request: GenerationRequest) -> _Tracked:
        self._check(request)
        return _Tracked(self, request.request_id)

    async def score(
        self, request_id: str, prompt_token_ids: Sequence[int], continuations: Sequence[Sequence[int]]
    ) -> Scores:
        if not continuations or any(not tokens for tokens in continuations):
            raise BadRequest("every continuation to score needs at least one token")
        await asyncio.sleep(self._step_s)
        context = _hash(tuple(prompt_token_ids[-16:]))
        logprobs = tuple(
            -sum((_hash(context, position, token) % 1000) / 250 for position, token in enumerate(tokens))
            for tokens in continuations
        )
        return Scores(logprobs)

    # -- lifecycle -------------------------------------------------------------------

    async def check_health(self) -> None:
        if self.stopped:
            raise EngineUnavailable("the inference engine has stopped; restart the server")

    def queue_depth(self) -> int:
        return len(self._running)

    async def shutdown(self) -> None:
        self.stopped = True


class _Tracked:
    """Counts a request as running while its block runs; one left early was aborted."""

    def __init__(self, engine: FakeEngine, request_id: str) -> None:
        self._engine = engine
        self._request_id = request_id

    async def __aenter__(self) -> None:
        self._engine._running.add(self._request_id)

    async def __aexit__(self, kind: object, error: object, trace: object) -> None:
        self._engine._running.discard(self._request_id)
        if error is not None:
            self._engine.aborted.append(self._request_id)


def _conforms(engine: FakeEngine) -> Engine:
    """Type-checked by mypy: the fake is an ``Engine``."""
    return engine
