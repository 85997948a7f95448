"""``POST /v1/chat/completions``: OpenAI's chat endpoint on the local model or a wrapper."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from server.http.middleware.auth import caller_digest, check_raw_model_allowed, check_wrapper_allowed
from server.http.middleware.observe import note_wrapper
from server.openai import params
from server.openai.chat.serving import chat_completion_from, prepare_chat
from server.openai.chat.stream import chat_chunks
from server.openai.chat.wrappers_as_models import wrapper_chat
from server.openai.protocol import ChatCompletionRequest
from server.openai.streaming import EventStream, first_delta
from server.releases.channels import ROUTE_KEY_HEADER
from server.state import ServerState, get_state
from server.structured.checked import generate_checked

__all__ = ["router"]

router = APIRouter(tags=["openai"])


@router.post("/v1/chat/completions", response_model=None)
async def create_chat_completion(
    body: ChatCompletionRequest, state: Annotated[ServerState, Depends(get_state)], request: Request
) -> Response:
    if body.model.startswith(params.WRAPPER_PREFIX):
        ref = body.model[len(params.WRAPPER_PREFIX) :]
        name = ref.partition("@")[0]
        check_wrapper_allowed(request, name)  # the per-key allow-list (server/http/middleware/auth.py)
        note_wrapper(request.scope, name)  # the metrics' wrapper label (only registered names count)
        route_key = request.headers.get(ROUTE_KEY_HEADER)
        return await wrapper_chat(body, state, ref, route_key, caller_digest(request))
    check_raw_model_allowed(request)
    params.check_model(body.model, state.manifest.id)
    engine = state.require_engine()
    prepared = await prepare_chat(body, state, engine)
    if body.stream:
        stream = engine.stream(prepared.request)
        first = await first_delta(stream)
        events = chat_chunks(first, stream, prepared, include_usage=params.include_usage(body.stream_options))
        return EventStream(prepared.request.request_id, events)
    resamples = state.settings.limits.max_schema_resamples
    result = await generate_checked(engine, prepared.request, prepared.grammar, resamples)
    return JSONResponse(chat_completion_from(result, prepared).model_dump(mode="json"))
