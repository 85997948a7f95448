"""OpenAI request fields -> the engine's ``Sampling`` and ``ChatMessage``, bounds checked.

Every bound is a 400 naming the field (``param``), as OpenAI answers; the limits come
from ``server/limits.py`` so these routes and the wrapper routes agree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from server.engine.protocol import ChatMessage, Sampling
from server.limits import Limits, check_engine_int, check_prompt_fits, check_unicode
from server.openai.protocol import ChatMessageIn, SampledRequest, StreamOptions, Usage
from wrappers.errors import BadRequest, NotFound

__all__ = [
    "MAX_TOP_LOGPROBS",
    "WRAPPER_PREFIX",
    "ModelNotFound",
    "chat_logprobs",
    "check_model",
    "check_sampling",
    "include_usage",
    "message_text",
    "resolve_max_tokens",
    "to_chat_messages",
    "to_sampling",
    "usage",
]

WRAPPER_PREFIX = "wrapper:"
MAX_TOP_LOGPROBS = 20


class ModelNotFound(NotFound):
    code = "model_not_found"


def check_model(requested: str, loaded: str) -> None:
    """The loaded model is the only plain model; ``wrapper:...`` is handled elsewhere."""
    if requested != loaded:
        raise ModelNotFound(
            f"the model {requested!r} does not exist; this server runs {loaded!r} "
            f"and wrappers as '{WRAPPER_PREFIX}NAME' (see GET /v1/models)",
            param="model",
        )


def include_usage(stream_options: StreamOptions | None) -> bool:
    """Whether a stream ends with a usage chunk (``stream_options.include_usage``)."""
    return bool(stream_options and stream_options.include_usage)


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int | None = None) -> Usage:
    """OpenAI's usage object; ``cached_tokens`` (prompt tokens from the prefix cache) when known."""
    details = None if cached_tokens is None else {"cached_tokens": cached_tokens}
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        prompt_tokens_details=details,
    )


def _stop_sequences(stop: str | list[str] | None, limits: Limits) -> tuple[str, ...]:
    if stop is None:
        return ()
    sequences = [stop] if isinstance(stop, str) else list(stop)
    if len(sequences) > limits.max_stop_sequences:
        raise BadRequest(
            f"{len(sequences)} stop sequences; at most {limits.max_stop_sequences} are allowed", param="stop"
        )
    if any(not sequence for sequence in sequences):
        raise BadRequest("stop sequences must not be empty", param="stop")
    return tuple(sequences)


def resolve_max_tokens(
    requested: int | None, prompt_tokens: int, max_model_len: int, limits: Limits, param: str
) -> int:
    """The request's token budget; when it sets none, ``Limits.default_max_tokens`` (or what
    is left of the context, when less)."""
    if requested is None:
        room = max_model_len - prompt_tokens
        requested = max(1, min(limits.default_max_tokens, limits.max_tokens, room))
    elif requested <= 0:
        raise BadRequest(f"{param} must be at least 1, got {requested}", param=param)
    elif requested > limits.max_tokens:
        raise BadRequest(f"{param} is {requested}; the limit is {limits.max_tokens}", param=param)
    check_prompt_fits(prompt_tokens, requested, max_model_len)
    return requested


def check_sampling(body: SampledRequest, limits: Limits) -> None:
    """The range checks of ``to_sampling``, for routes whose own defaults then apply."""
    to_sampling(body, max_tokens=1, logprobs=None, limits=limits)


def to_sampling(body: SampledRequest, *, max_tokens: int, logprobs: int | None, limits: Limits) -> Sampling:
    """Engine sampling from OpenAI's fields, with OpenAI's defaults (temperature 1)."""
    temperature = 1.0 if body.temperature is None else body.temperature
    if not 0 <= temperature <= 2:
        raise BadRequest(f"temperature must be between 0 and 2, got {temperature}", param="temperature")
    top_p = 1.0 if body.top_p is None else body.top_p
    if not 0 < top_p <= 1:
        raise BadRequest(f"top_p must be in (0, 1], got {top_p}", param="top_p")
    penalties = {
        "frequency_penalty": body.frequency_penalty or 0.0,
        "presence_penalty": body.presence_penalty or 0.0,
    }
    for name, value in penalties.items():
        if not -2 <= value <= 2:
            raise BadRequest(f"{name} must be between -2 and 2, got {value}", param=name)
    check_engine_int(body.seed, "seed")
    n = 1 if body.n is None else body.n
    if not 1 <= n <= limits.max_n:
        raise BadRequest(f"n must be between 1 and {limits.max_n}, got {n}", param="n")
    return Sampling(
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        n=n,
        stop=_stop_sequences(body.stop, limits),
        seed=body.seed,
        logprobs=logprobs,
        ignore_eos=bool(body.ignore_eos),
        **penalties,
    )


def chat_logprobs(logprobs: bool | None, top_logprobs: int | None) -> int | None:
    """Chat's ``logprobs``/``top_logprobs`` -> how many alternatives the engine reports."""
    if top_logprobs is not None and not 0 <= top_logprobs <= MAX_TOP_LOGPROBS:
        raise BadRequest(
            f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}, got {top_logprobs}", param="top_logprobs"
        )
    if not logprobs:
        if top_logprobs:
            raise BadRequest("top_logprobs needs logprobs set to true", param="top_logprobs")
        return None
    return top_logprobs or 0


def message_text(message: ChatMessageIn, index: int) -> str:
    """A message's text: a string, or its text parts joined; other parts are refused."""
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for number, part in enumerate(content):
        if part.type != "text" or part.text is None:
            raise BadRequest(
                f"content part of type {part.type!r} is not supported; this server takes text only",
                param=f"messages.{index}.content.{number}",
            )
        texts.append(part.text)
    return "\n".join(texts)


_ROLES = {"developer": "system", "function": "tool"}


def to_chat_messages(messages: Sequence[ChatMessageIn]) -> list[ChatMessage]:
    """OpenAI messages -> engine messages. An assistant's earlier tool calls become their JSON."""
    converted = []
    for index, message in enumerate(messages):
        text = message_text(message, index)
        if message.role == "assistant" and message.tool_calls:
            calls = [
                {"name": call.function.name, "arguments": _arguments(call.function.arguments)}
                for call in message.tool_calls
            ]
            text = "\n".join(filter(None, [text, *(json.dumps(call) for call in calls)]))
        check_unicode(text, f"messages.{index}.content")
        role = _ROLES.get(message.role, message.role)
        converted.append(ChatMessage(role=role, content=text))  # type: ignore[arg-type]
    return converted


def _arguments(raw: str) -> object:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, RecursionError):  # kept as text, as any non-JSON arguments
        return raw
