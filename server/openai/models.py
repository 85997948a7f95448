"""``GET /v1/models`` in OpenAI's shape: the loaded model, then every wrapper as a model."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from server.http.middleware.auth import visible_raw_model, visible_wrapper
from server.openai.params import ModelNotFound
from server.state import ServerState, get_state

__all__ = ["router"]

router = APIRouter(tags=["openai"])

_STARTED = int(time.time())


@router.get("/v1/models")
async def list_models(state: Annotated[ServerState, Depends(get_state)], request: Request) -> dict[str, Any]:
    return {"object": "list", "data": _models(state, request)}


@router.get("/v1/models/{model_id}")
async def get_model(
    model_id: str, state: Annotated[ServerState, Depends(get_state)], request: Request
) -> dict[str, Any]:
    for model in _models(state, request):
        if model["id"] == model_id:
            return model
    raise ModelNotFound(f"no model {model_id!r} (see GET /v1/models)", param="model")


def _models(state: ServerState, request: Request) -> list[dict[str, Any]]:
    """What the caller's key may use: the raw model if granted, the wrappers it may call."""
    manifest = state.manifest
    data: list[dict[str, Any]] = []
    if visible_raw_model(request):
        data.append(
            {
                "id": manifest.id,
                "object": "model",
                "created": _STARTED,
                "owned_by": "wrapserve",
                "max_model_len": state.engine.info.max_model_len if state.engine else manifest.max_model_len,
                "ready": state.phase == "ready",
            }
        )
    for name in (name for name in state.registry.names() if visible_wrapper(request, name)):
        versions = state.registry.versions(name)  # newest first
        for wrapper, ref in [(versions[0], name)] + [(w, w.ref()) for w in versions]:
            data.append(
                {
                    "id": f"wrapper:{ref}",
                    "object": "model",
                    "created": _STARTED,
                    "owned_by": "wrapserve",
                    "wrapper": wrapper.name,
                    "version": wrapper.version,
                    "description": wrapper.description,
                    "ready": state.phase == "ready",
                }
            )
    return data
