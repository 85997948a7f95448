"""``/v1/responses``: OpenAI's Responses API on the local model, a wrapper (``model:
"wrapper:NAME"``) or a wrapper as a reusable prompt (``prompt: {id, version, variables}``).

Generation goes through the chat path (``server/openai/chat/``): the same prompt
rendering, grammar (``text.format``, tools), answer checks and resamples. Responses are
stored unless ``store`` is false (``server/openai/responses/store.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from server.engine.protocol import GeneratedChoice, GenerationResult
from server.http.middleware.auth import (
    Caller,
    caller_digest,
    check_raw_model_allowed,
    check_wrapper_allowed,
)
from server.http.middleware.observe import note_wrapper
from server.invocation.service import InputInvalid
from server.openai import params
from server.openai.chat.serving import chat_completion_from, prepare_chat
from server.openai.chat.wrappers_as_models import wrapper_completion
from server.openai.protocol import ChatCompletion, ChatCompletionRequest
from server.openai.responses.events import live_text_events, whole_response_events
from server.openai.responses.protocol import ResponsesRequest
from server.openai.responses.store import ResponseStore, get_responses
from server.openai.responses.translate import (
    chat_messages,
    chat_request,
    check_request,
    input_items,
    new_id,
    response_object,
)
from server.openai.streaming import EventStream, first_delta, resumed
from server.releases.channels import ROUTE_KEY_HEADER
from server.state import ServerState, get_state
from server.structured.checked import StreamCheck, generate_checked
from wrappers.errors import BadRequest

__all__ = ["router"]

router = APIRouter(tags=["openai"])

State = Annotated[ServerState, Depends(get_state)]
Store = Annotated[ResponseStore, Depends(get_responses)]


def _wrapper_extra(completion: ChatCompletion) -> dict[str, Any]:
    name, _, version = completion.model[len(params.WRAPPER_PREFIX) :].partition("@")
    output = json.loads(completion.choices[0].message.content or "null")
    return {
        "wrapper": {
            "name": name,
            "version": version,
            "fingerprint": completion.system_fingerprint,
            "output": output,
        }
    }


async def _run_wrapper(
    body: ResponsesRequest, state: ServerState, request: Request, ref: str, messages: list[dict[str, Any]]
) -> ChatCompletion:
    name = ref.partition("@")[0]
    check_wrapper_allowed(request, name)
    note_wrapper(request.scope, name)
    if body.tools:
        raise BadRequest("a wrapper does not call tools", param="tools")
    chat = ChatCompletionRequest.model_validate(
        {
            "model": params.WRAPPER_PREFIX + ref,
            "messages": messages or [{"role": "user", "content": ""}],
            "temperature": body.temperature,
            "top_p": body.top_p,
            "seed": body.seed,
            "max_completion_tokens": body.max_output_tokens,
        }
    )
    route_key = request.headers.get(ROUTE_KEY_HEADER)
    return await wrapper_completion(chat, state, ref, route_key, caller_digest(request))


async def _prompt_wrapper(body: ResponsesRequest, state: ServerState, request: Request) -> ChatCompletion:
    assert body.prompt is not None
    ref = body.prompt.id + (f"@{body.prompt.version}" if body.prompt.version else "")
    variables = json.dumps(body.prompt.variables or {}, ensure_ascii=False)
    try:
        return await _run_wrapper(body, state, request, ref, [{"role": "user", "content": variables}])
    except InputInvalid as error:  # the variables are the wrapper's input
        field = (error.param or "").removeprefix("input").lstrip(".")
        param = f"prompt.variables.{field}" if field else "prompt.variables"
        raise InputInvalid(error.message.replace(error.param or "\0", param, 1), param=param) from None


@router.post("/v1/responses", response_model=None)
async def create_response(
    body: ResponsesRequest, state: State, store: Store, caller: Caller, request: Request
) -> Response:
    check_request(body)
    previous = (
        (
            await asyncio.to_thread(store.get, body.previous_response_id, caller, "previous_response_id")
        ).conversation
        if body.previous_response_id
        else []
    )
    items = input_items(body)
    conversation = previous + chat_messages(items)
    response_id = new_id("resp")
    model = body.model or ""

    def finished(completion: ChatCompletion, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        response = response_object(
            response_id, body, model=completion.model, completion=completion, extra=extra
        )
        if body.store is not False:
            answer = chat_messages(response["output"])
            store.save(response, items, conversation + answer, caller)
        return response

    if body.prompt is not None or model.startswith(params.WRAPPER_PREFIX):
        if body.prompt is not None:
            completion = await _prompt_wrapper(body, state, request)
        else:
            completion = await _run_wrapper(
                body, state, request, model[len(params.WRAPPER_PREFIX) :], conversation
            )
        response = finished(completion, _wrapper_extra(completion))
        if body.stream:
            return EventStream(response_id, whole_response_events(response))
        return JSONResponse(response)

    if not model:
        raise BadRequest("model is required (or a prompt naming a wrapper)", param="model")
    check_raw_model_allowed(request)
    params.check_model(model, state.manifest.id)
    engine = state.require_engine()
    prepared = await prepare_chat(chat_request(body, conversation, model), state, engine)
    if body.stream and prepared.tools is None:
        return await _live_stream(body, state, prepared, response_id, finished)
    result = await generate_checked(
        engine, prepared.request, prepared.grammar, state.settings.limits.max_schema_resamples
    )
    response = finished(chat_completion_from(result, prepared))
    if body.stream:
        return EventStream(response_id, whole_response_events(response))
    return JSONResponse(response)


async def _live_stream(
    body: ResponsesRequest, state: ServerState, prepared: Any, response_id: str, finished: Any
) -> Response:
    engine = state.require_engine()
    stream = engine.stream(prepared.request)
    first = await first_delta(stream)
    check = StreamCheck(prepared.grammar)
    pieces: list[str] = []
    ending: dict[str, Any] = {"finish_reason": "stop", "completion_tokens": 0, "cached": 0}
    message_id = new_id("msg")

    async def texts() -> AsyncIterator[str]:
        async with aclosing(resumed(first, stream)) as deltas:
            async for delta in deltas:
                yield await _take(delta)

    async def _take(delta: Any) -> str:
        await check.check(delta.index, delta.text, delta.finish_reason)
        pieces.append(delta.text)
        ending["completion_tokens"] = delta.completion_tokens
        ending["cached"] = max(ending["cached"], delta.cached_prompt_tokens)
        if delta.finish_reason is not None:
            ending["finish_reason"] = delta.finish_reason
        return str(delta.text)

    async def finish() -> dict[str, Any]:
        choice = GeneratedChoice(0, "".join(pieces), ending["completion_tokens"], ending["finish_reason"])
        result = GenerationResult((choice,), len(prepared.request.prompt_token_ids), ending["cached"])
        response: dict[str, Any] = finished(chat_completion_from(result, prepared))
        response["output"][0]["id"] = message_id
        return response

    skeleton = response_object(response_id, body, model=prepared.model)
    return EventStream(response_id, live_text_events(skeleton, message_id, texts(), finish))


@router.get("/v1/responses/{response_id}")
def get_response(response_id: str, store: Store, caller: Caller) -> dict[str, Any]:
    return store.get(response_id, caller).response


@router.delete("/v1/responses/{response_id}")
def delete_response(response_id: str, store: Store, caller: Caller) -> dict[str, Any]:
    store.delete(response_id, caller)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


@router.get("/v1/responses/{response_id}/input_items")
def list_input_items(
    response_id: str,
    store: Store,
    caller: Caller,
    order: str = "desc",
    limit: int = 20,
    after: str | None = None,
) -> dict[str, Any]:
    if order not in ("asc", "desc"):
        raise BadRequest("order is asc or desc", param="order")
    if not 1 <= limit <= 100:
        raise BadRequest("limit is between 1 and 100", param="limit")
    items = store.get(response_id, caller).input_items
    ordered = items if order == "asc" else list(reversed(items))
    if after is not None:
        ids = [item["id"] for item in ordered]
        if after not in ids:
            raise BadRequest(f"no input item {after!r} in this response", param="after")
        ordered = ordered[ids.index(after) + 1 :]
    page = ordered[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(ordered) > limit,
    }
