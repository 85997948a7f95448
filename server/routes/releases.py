"""Release routes: the channels in force, and a wrapper's recorded shadow answers."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from server.http.middleware.auth import Caller, check_wrapper_allowed, visible_wrapper
from server.state import ServerState, get_state

__all__ = ["router"]

router = APIRouter(prefix="/v1/releases", tags=["releases"])

State = Annotated[ServerState, Depends(get_state)]


@router.get("")
async def list_releases(state: State, request: Request) -> dict[str, Any]:
    """Channels and calibrations as the server applies them now (visible wrappers only)."""
    releases = state.releases
    return {
        "object": "releases",
        "generation": releases.generation,  # +1 on each successful reload (SIGHUP)
        "last_error": releases.last_error,  # why the last reload was refused, if it was
        "wrappers": {
            name: spec.model_dump(mode="json", exclude_none=True)
            for name, spec in releases.config.wrappers.items()
            if visible_wrapper(request, name)
        },
    }


@router.get("/{name}/shadow")
async def shadow_answers(
    name: str,
    state: State,
    request: Request,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The newest shadow comparisons of ``name`` made with the caller's key: input, served and
    candidate answers (a key never reads another key's inputs)."""
    check_wrapper_allowed(request, name)
    rows = await asyncio.to_thread(state.shadow.store.recent, name, limit, caller)
    return {"object": "list", "wrapper": name, "data": rows}
