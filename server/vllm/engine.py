"""vLLM behind the narrow ``Engine`` interface: the only server module that runs vLLM
(``server/vllm/plugins/compat.py`` only patches older releases, as a vLLM plugin).

vLLM's ``AsyncLLM`` runs in-process (its engine core in a worker process), so every
request the server accepts joins vLLM's continuous batch. Structured outputs are
enforced by vLLM's grammar backend (outlines by default) from the constraint that
``server/structured/grammar.py`` compiled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from models.manifest import ModelManifest
from server.engine.protocol import (
    ChatMessage,
    EngineInfo,
    GeneratedChoice,
    GenerationRequest,
    GenerationResult,
    Scores,
    StreamDelta,
    TokenLogprob,
)
from server.limits import ContextOverflow
from server.settings import Settings
from server.vllm.args import (
    KvCacheProbe,
    detect_device,
    engine_args,
    engine_environment,
    explain_start_failure,
)
from server.vllm.branching import TokenPath, branch_points, constrained_logprobs
from server.vllm.sampling import answer_text, sampling_params
from server.vllm.tokenizing import TokenizerLanes
from wrappers.errors import BadRequest, ConfigurationError, EngineUnavailable

__all__ = ["VllmEngine"]

log = logging.getLogger("wrapserve.engine")

# vLLM's bound on ``SamplingParams.logprob_token_ids`` per request.
_MAX_SCORED_TOKENS = 128
# Short texts (the labels a scored call tokenizes, 3-6 per call, the same across calls) are
# kept tokenized: each would otherwise cost a hop to the tokenizer thread and back.
_SHORT_TEXT_CHARS = 64
_SHORT_TEXTS_KEPT = 4096


# About what a chat template adds around each message (role markers, separators).
_TEMPLATE_CHARS_PER_MESSAGE = 32


def _longest_token_bytes(tokenizer: Any) -> int:
    """The most UTF-8 bytes any single token of the vocabulary decodes to (a text has at
    least as many bytes as characters, so this bounds the characters a token covers)."""
    return max(len(tokenizer.decode([token_id]).encode()) for token_id in range(len(tokenizer)))


class GrammarFailed(BadRequest):
    code = "grammar_compile_failed"
    retryable = True


def _request_error(request: GenerationRequest) -> Exception:
    """vLLM finishes a request with reason "error" when its grammar failed to compile in
    time (VLLM_REGEX_COMPILATION_TIMEOUT_S) or on another per-request engine error."""
    if request.constraint is not None:
        return GrammarFailed(
            "the engine could not build the output grammar in time; simplify the schema "
            "(long minLength/maxLength or large repetitions are costly) or retry when the server is less busy"
        )
    return EngineUnavailable("the engine failed this request; retry")


class VllmEngine:
    """vLLM's AsyncLLM adapted to ``server.engine.protocol.Engine``.

    Prompts are rendered and tokenized off the event loop, short and long ones on threads
    of their own (``server/vllm/tokenizing.py``).
    """

    def __init__(
        self, llm: Any, info: EngineInfo, chat_template: str | None, kv_probe: KvCacheProbe | None = None
    ) -> None:
        self._kv_probe = kv_probe
        self._llm = llm
        self._tokenizer = llm.get_tokenizer()
        self.info = dataclasses.replace(info, vocab_size=len(self._tokenizer))
        cache = getattr(getattr(llm, "vllm_config", None), "cache_config", None)
        # Only whole KV blocks are shared by vLLM's prefix cache; None: no prefix cache.
        block_size = cache.block_size if cache is not None and cache.enable_prefix_caching else None
        self._tokenizing = TokenizerLanes(self._tokenizer, chat_template, block_size)
        self._short_texts: OrderedDict[str, tuple[int, ...]] = OrderedDict()  # least recent first
        # No token covers more characters than this, so a text longer than max_model_len x
        # this cannot fit the context: refused before it is tokenized (8 MB of text would
        # hold the tokenizer thread for seconds). Exact for byte-level BPE, which loses
        # nothing; a tokenizer that drops characters could make it refuse a text that would
        # fit, but only one far longer than any that does.
        self._max_prompt_chars = info.max_model_len * _longest_token_bytes(self._tokenizing.layout.tokenizer)

    def _refuse_if_too_long(self, chars: int, param: str) -> None:
        if chars > self._max_prompt_chars:
            raise ContextOverflow(
                f"the prompt has {chars} characters, more than {self.info.max_model_len} tokens (the "
                f"model's context length) can hold: no token of this model is longer than "
                f"{self._max_prompt_chars // self.info.max_model_len} characters",
                param=param,
            )

    @classmethod
    async def start(
        cls,
        settings: Settings,
        manifest: ModelManifest,
        weights: Path,
        client: dict[str, Any] | None = None,
    ) -> VllmEngine:
        """Build the engine off the event loop (start-up takes tens of seconds).

        ``client``: in one of several API workers (``server/vllm/api_workers.py``), the
        addresses of the engine core already running, which this process connects to
        instead of starting its own.
        """
        os.environ.update(engine_environment(settings, os.environ))  # read by vLLM's processes
        started = time.monotonic()
        kv_probe = KvCacheProbe()

        def build() -> tuple[Any, str]:
            # Importing vLLM alone takes seconds: keep it off the event loop too.
            from vllm.usage.usage_lib import UsageContext
            from vllm.v1.engine.async_llm import AsyncLLM

            device = detect_device(settings.device)
            args = engine_args(settings, manifest, weights, device)
            if client is None:
                return AsyncLLM.from_engine_args(args, stat_loggers=[kv_probe.logger_class()]), device
            addresses = dict(client)
            count, index = addresses.pop("client_count"), addresses.pop("client_index")
            addresses.pop("api_server_loads", None)  # vLLM's own accept balancing; uvicorn accepts here
            args._api_process_count, args._api_process_rank = count, index
            config = args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)
            llm = AsyncLLM.from_vllm_config(
                config,
                usage_context=UsageContext.OPENAI_API_SERVER,
                stat_loggers=[kv_probe.logger_class()],
                client_addresses=addresses,
                client_count=count,
                client_index=index,
            )
            return llm, device

        try:
            llm, device = await asyncio.to_thread(build)
        except Exception as error:  # vLLM raises many types here; all mean "cannot start"
            raise ConfigurationError(explain_start_failure(str(error) or type(error).__name__)) from error
        # vLLM reads its settings from the environment on every use (per token, in its
        # output processing) until told they are final, as its engine process does at start.
        from vllm.envs import enable_envs_cache

        enable_envs_cache()
        info = EngineInfo(
            model_id=manifest.id,
            max_model_len=llm.model_config.max_model_len,
            device=device,
            structured_output_backend=settings.structured_output_backend,
            startup_s=time.monotonic() - started,
        )
        # Copying the tokenizer and measuring its vocabulary take a second: off the loop too.
        return await asyncio.to_thread(cls, llm, info, manifest.chat_template, kv_probe)

    # -- prompts ---------------------------------------------------------------------

    async def encode_chat(
        self, messages: Sequence[ChatMessage], *, assistant_prefix: str = "", align_through: str | None = None
    ) -> list[int]:
        chars = sum(len(m.content) for m in messages) + len(assistant_prefix)
        self._refuse_if_too_long(chars, "messages")
        if len(messages) > self.info.max_model_len:  # each message's template adds at least a token
            raise ContextOverflow(
                f"{len(messages)} messages cannot fit the model's context length of "
                f"{self.info.max_model_len} tokens (every message adds at least one)",
                param="messages",
            )
        chat = [{"role": m.role, "content": m.content} for m in messages]
        # The lane goes by what the template renders: each message adds its own markup.
        rendered_chars = chars + _TEMPLATE_CHARS_PER_MESSAGE * len(messages)
        return await self._tokenizing.run(
            rendered_chars,
            lambda layout: layout.encode_chat(chat, assistant_prefix, align_through),
            one_pass=self._tokenizing.layout.padding_known(chat, align_through),
        )

    async def encode_text(self, text: str) -> list[int]:
        self._refuse_if_too_long(len(text), "prompt")
        if len(text) > _SHORT_TEXT_CHARS:
            return await self._tokenizing.run(len(text), lambda layout: layout.encode(text))
        ids = self._short_texts.get(text)
        if ids is None:
            ids = tuple(await self._tokenizing.run(len(text), lambda layout: layout.encode(text)))
            self._short_texts[text] = ids
            if len(self._short_texts) > _SHORT_TEXTS_KEPT:
                self._short_texts.popitem(last=False)
        else:
            self._short_texts.move_to_end(text)
        return list(ids)

    # -- generation ------------------------------------------------------------------

    async def _outputs(
        self, request: GenerationRequest, delta: bool, params: Any = None
    ) -> AsyncIterator[Any]:
        from vllm.exceptions import VLLMValidationError
        from vllm.v1.engine.exceptions import EngineDeadError

        if self._llm.errored:
            raise EngineUnavailable("the inference engine has stopped; restart the server")
        params = params or sampling_params(request.sampling, request.constraint, delta)
        # Tokens as vLLM's renderer would hand them on: no renderer pass per request.
        prompt = {"type": "token", "prompt_token_ids": list(request.prompt_token_ids)}
        try:
            async for output in self._llm.generate(prompt, params, request.request_id):
                yield output
        except EngineDeadError as error:
            raise EngineUnavailable("the inference engine has stopped; restart the server") from error
        except (VLLMValidationError, ValueError) as error:
            raise BadRequest(" ".join(str(error).split())) from error

    def _logprobs(self, completion: Any) -> tuple[TokenLogprob, ...] | None:
        if completion.logprobs is None:
            return None
        entries = []
        for token_id, position in zip(completion.token_ids, completion.logprobs, strict=False):
            chosen = position.get(token_id)
            ranked = sorted(position.items(), key=lambda item: item[1].rank or 0)
            entries.append(
                TokenLogprob(
                    token=(chosen.decoded_token if chosen else None) or self._tokenizer.decode([token_id]),
                    logprob=float(chosen.logprob) if chosen else float("-inf"),
                    top=tuple((lp.decoded_token or "", float(lp.logprob)) for _, lp in ranked),
                )
            )
        return tuple(entries)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        params = sampling_params(request.sampling, request.constraint, delta=False)
        final = None
        async for output in self._outputs(request, delta=False, params=params):
            final = output
        if final is None:
            raise EngineUnavailable("the engine returned no output")
        if any(c.finish_reason == "error" for c in final.outputs):
            raise _request_error(request)
        detokenized = params.detokenize
        choices = tuple(
            GeneratedChoice(
                index=completion.index,
                text=completion.text
                if detokenized
                else answer_text(self._tokenizer, request.prompt_token_ids, completion.token_ids),
                completion_tokens=len(completion.token_ids),
                finish_reason=completion.finish_reason or "abort",
                logprobs=self._logprobs(completion),
            )
            for completion in sorted(final.outputs, key=lambda c: c.index)
        )
        return GenerationResult(
            choices=choices,
            prompt_tokens=len(final.prompt_token_ids or request.prompt_token_ids),
            cached_prompt_tokens=final.num_cached_tokens or 0,
        )

    async def score(
        self, request_id: str, prompt_token_ids: Sequence[int], continuations: Sequence[Sequence[int]]
    ) -> Scores:
        if not continuations or any(not tokens for tokens in continuations):
            raise BadRequest("every continuation to score needs at least one token")
        branches = branch_points(continuations)
        # One engine step per branch point (and per _MAX_SCORED_TOKENS of its branches).
        steps = [
            (path, branches[path][start : start + _MAX_SCORED_TOKENS])
            for path in sorted(branches, key=len)
            for start in range(0, len(branches[path]), _MAX_SCORED_TOKENS)
        ]
        if not steps:  # a single continuation: nothing to decide
            return Scores(tuple(0.0 for _ in continuations))
        prompt = list(prompt_token_ids)

        async def step(index: int, path: TokenPath, tokens: list[int]) -> tuple[dict[int, float], int]:
            return await self._one_step(f"{request_id}-{index}", [*prompt, *path], tokens)

        # The first step computes the prompt; the rest, together, read it from the prefix cache.
        first = await step(0, *steps[0])
        rest = await asyncio.gather(*(step(index, *s) for index, s in enumerate(steps[1:], start=1)))
        logprob = {
            (path, token): value
            for (path, _), (found, _) in zip(steps, [first, *rest], strict=True)
            for token, value in found.items()
        }
        return Scores(constrained_logprobs(continuations, branches, logprob), cached_prompt_tokens=first[1])

    async def _one_step(
        self, request_id: str, prompt: list[int], tokens: list[int]
    ) -> tuple[dict[int, float], int]:
        """One engine step: the next-token log-probs (raw, before any processing) of
        ``tokens``, and how many prompt tokens the prefix cache served."""
        from vllm.sampling_params import RequestOutputKind, SamplingParams

        params = SamplingParams(
            max_tokens=1,
            temperature=0.0,
            logprob_token_ids=tokens,
            output_kind=RequestOutputKind.FINAL_ONLY,
            detokenize=False,  # only the log-probs are read
            skip_clone=True,
        )
        request = GenerationRequest(request_id, prompt)
        final = None
        async for output in self._outputs(request, delta=False, params=params):
            final = output
        if final is None or any(c.finish_reason == "error" for c in final.outputs):
            raise _request_error(request)
        position = final.outputs[0].logprobs[0]
        return {token: float(position[token].logprob) for token in tokens}, final.num_cached_tokens or 0

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        produced: dict[int, int] = {}
        async for output in self._outputs(request, delta=True):
            for completion in output.outputs:
                if completion.finish_reason == "error":
                    raise _request_error(request)
                produced[completion.index] = produced.get(completion.index, 0) + len(completion.token_ids)
                yield StreamDelta(
                    index=completion.index,
                    text=completion.text,
                    finish_reason=completion.finish_reason,
                    logprobs=self._logprobs(completion),
                    prompt_tokens=len(request.prompt_token_ids),
                    completion_tokens=produced[completion.index],
                    cached_prompt_tokens=output.num_cached_tokens or 0,
                )

    # -- lifecycle -------------------------------------------------------------------

    async def check_health(self) -> None:
        if self._llm.errored:
            raise EngineUnavailable("the inference engine has stopped; restart the server")
        try:
            await asyncio.wait_for(self._llm.check_health(), timeout=5)
        except Exception as error:
            raise EngineUnavailable(f"the inference engine is not healthy: {error}") from error

    def queue_depth(self) -> int:
        # AsyncLLM.get_num_unfinished_requests() is missing in vLLM 0.26; the output processor
        # it delegates to has the same count there and in later releases.
        count = getattr(self._llm, "get_num_unfinished_requests", None)
        if count is None:
            count = self._llm.output_processor.get_num_unfinished_requests
        return int(count())

    def kv_cache_usage(self) -> float | None:
        return self._kv_probe.usage if self._kv_probe is not None else None

    async def shutdown(self) -> None:
        self._tokenizing.shutdown()
        await asyncio.to_thread(self._llm.shutdown)
