"""Readiness: 200 only when the engine can generate, 503 while starting, draining or failed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from server.state import ServerState, get_state
from wrappers.errors import EngineUnavailable

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(state: Annotated[ServerState, Depends(get_state)]) -> JSONResponse:
    body: dict[str, object] = {"status": state.phase, "model": state.manifest.id}
    if state.settings.api_workers > 1:  # which worker answered (each says its own readiness)
        body["api_worker"] = state.settings.api_worker_index
    try:
        engine = state.require_engine()
        if state.phase != "ready":  # draining: in-flight work finishes, but not ready for more
            raise EngineUnavailable("the server is shutting down")
        await engine.check_health()
    except EngineUnavailable as error:
        body["detail"] = error.message
        return JSONResponse(body, status_code=503)
    body["status"] = "ok"
    return JSONResponse(body)
