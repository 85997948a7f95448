"""``model: "wrapper:NAME[@VERSION]"``: a wrapper called through the chat endpoint.

The last user message is the wrapper's input: a JSON object, or plain text for a
wrapper whose input has one required text field. The answer's content is the
wrapper's output JSON, produced by ``WrapperService`` exactly as the native route
does (same validation, grammar and cache), so an unchanged OpenAI client gets typed,
versioned answers. Streaming sends the finished answer as one content chunk.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from fastapi.responses import JSONResponse, Response

from server.invocation.service import InputInvalid, Invocation, InvokeOptions
from server.openai.params import (
    WRAPPER_PREFIX,
    ModelNotFound,
    check_sampling,
    include_usage,
    message_text,
    usage,
)
from server.openai.protocol import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessageOut,
    ChunkChoice,
    Delta,
    Usage,
)
from server.openai.streaming import EventStream
from server.state import ServerState
from wrappers.base import Wrapper
from wrappers.errors import BadRequest, NotFound

__all__ = ["wrapper_chat", "wrapper_completion", "wrapper_input"]


def _single_text_field(wrapper: type[Wrapper]) -> str | None:
    required = [(name, field) for name, field in wrapper.Input.model_fields.items() if field.is_required()]
    if len(required) == 1 and required[0][1].annotation is str:
        name, field = required[0]
        return field.alias or name
    return None


def wrapper_input(wrapper: type[Wrapper], body: ChatCompletionRequest) -> Any:
    """The wrapper's raw input from the last user message."""
    users = [(index, m) for index, m in enumerate(body.messages) if m.role == "user"]
    if not users:
        raise BadRequest("a wrapper model needs a user message carrying its input", param="messages")
    index, message = users[-1]
    text = message_text(message, index)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        return value
    if (field := _single_text_field(wrapper)) is not None:
        return {field: text}
    raise InputInvalid(
        f"wrapper {wrapper.ref()} takes a JSON object as the last user message "
        f"(its input schema: GET /v1/wrappers/{wrapper.name})",
        param=f"messages.{index}.content",
    )


def _refuse_unsupported(body: ChatCompletionRequest) -> None:
    if body.n not in (None, 1):
        raise BadRequest("a wrapper model answers with one choice; n must be 1", param="n")
    if body.tools and body.tool_choice != "none":
        raise BadRequest("a wrapper model does not call tools", param="tools")
    if body.logprobs:
        raise BadRequest("logprobs are not available for wrapper models", param="logprobs")
    if body.stop:
        raise BadRequest("stop sequences would cut a wrapper's structured answer", param="stop")
    if body.chat_template is not None:  # as on the model itself: templates come from manifests
        raise BadRequest(
            "chat_template is not accepted; the template comes from the model's manifest",
            param="chat_template",
        )


def _options(body: ChatCompletionRequest, state: ServerState) -> InvokeOptions:
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    if max_tokens is not None and max_tokens <= 0:
        raise BadRequest(f"max_tokens must be at least 1, got {max_tokens}", param="max_tokens")
    # Range checks only: the wrapper's own defaults apply where the request says nothing.
    check_sampling(body, state.settings.limits)
    return InvokeOptions(
        max_tokens=max_tokens, temperature=body.temperature, top_p=body.top_p, seed=body.seed
    )


async def _one_chunk_stream(
    completion: ChatCompletion, include_usage: bool
) -> AsyncGenerator[ChatCompletionChunk]:
    def chunk(choices: list[ChunkChoice], usage: Usage | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=completion.id,
            created=completion.created,
            model=completion.model,
            choices=choices,
            usage=usage,
            system_fingerprint=completion.system_fingerprint,
        )

    choice = completion.choices[0]
    yield chunk([ChunkChoice(index=0, delta=Delta(role="assistant", content=""))])
    yield chunk([ChunkChoice(index=0, delta=Delta(content=choice.message.content))])
    yield chunk([ChunkChoice(index=0, delta=Delta(), finish_reason=choice.finish_reason)])
    if include_usage:
        yield chunk([], completion.usage)


def _completion(invocation: Invocation) -> ChatCompletion:
    wrapper = invocation.wrapper
    content = json.dumps(invocation.output, ensure_ascii=False)
    return ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=f"{WRAPPER_PREFIX}{wrapper.ref()}",
        choices=[
            ChatChoice(
                index=0, message=ChatMessageOut(content=content), finish_reason=invocation.finish_reason
            )
        ],
        usage=usage(invocation.prompt_tokens, invocation.completion_tokens, invocation.cached_prompt_tokens),
        system_fingerprint=wrapper.fingerprint(),
    )


async def wrapper_completion(
    body: ChatCompletionRequest,
    state: ServerState,
    ref: str,
    route_key: str | None = None,
    owner: str | None = None,
) -> ChatCompletion:
    """Run the wrapper ``ref`` (``body.model`` less its ``wrapper:`` prefix; a version or a
    channel after ``@``) on the last user message; the answer as a chat completion (the
    Responses API builds on it too). ``route_key``: the caller's sticky key for splits;
    ``owner``: the caller's API key digest, who may read the call's shadow comparison."""
    try:
        wrapper, route = state.wrappers.route(ref, None, route_key)
    except NotFound as error:
        raise ModelNotFound(
            f"{error.message} (model {body.model!r}; see GET /v1/models)", param="model"
        ) from None
    _refuse_unsupported(body)
    options = _options(body, state)
    invocation = await state.wrappers.invoke_routed(
        wrapper, route, wrapper_input(wrapper, body), options, owner=owner
    )
    return _completion(invocation)


async def wrapper_chat(
    body: ChatCompletionRequest,
    state: ServerState,
    ref: str,
    route_key: str | None = None,
    owner: str | None = None,
) -> Response:
    completion = await wrapper_completion(body, state, ref, route_key, owner)
    if body.stream:
        return EventStream(completion.id, _one_chunk_stream(completion, include_usage(body.stream_options)))
    return JSONResponse(completion.model_dump(mode="json"))
