"""Run one batch line through the app itself, in-process, as if it came over HTTP.

Any route works this way (chat completions, completions, wrapper invocations) with
exactly the validation and error mapping a client gets, and without depending on any
route's internals. Internal requests enter below the network-facing middleware: they
were authenticated when the batch was created, cannot be forged from outside (they
never touch a socket), and are marked with ``scope["wrapserve.internal"] = True`` for
any dependency that wants to tell them apart. The batch creator's key digest rides
along in ``scope["wrapserve.key"]``, so per-key allow-lists apply to batch lines too.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from server.http.middleware.auth import KEY_SCOPE
from server.lifecycle import Lifecycle

__all__ = ["Dispatcher", "LineResponse", "internal_asgi"]

RETRYABLE = (429, 503)
MAX_UNAVAILABLE_ATTEMPTS = 5

_owner_key: ContextVar[str | None] = ContextVar("wrapserve_batch_owner_key", default=None)

INTERNAL_SCOPE_KEY = "wrapserve.internal"


def internal_asgi(app: FastAPI) -> ASGIApp:
    """The app's routes with its error handlers, minus the middleware meant for the network."""
    handlers = {key: value for key, value in app.exception_handlers.items() if key not in (500, Exception)}
    inner = ExceptionMiddleware(AsyncExitStackMiddleware(app.router), handlers=handlers)

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = app
        scope[INTERNAL_SCOPE_KEY] = True
        owner = _owner_key.get()
        if owner is not None:
            scope[KEY_SCOPE] = owner
        await inner(scope, receive, send)

    return asgi


@dataclass(frozen=True, slots=True)
class LineResponse:
    status_code: int
    request_id: str
    body: Any


class Dispatcher:
    """POSTs batch lines to the app in-process; an unexpected exception becomes a 500 body."""

    def __init__(self, app: FastAPI) -> None:
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=internal_asgi(app), raise_app_exceptions=True),
            base_url="http://wrapserve.internal",
            timeout=None,
        )

    async def post(self, url: str, body: dict[str, Any], owner_key: str | None = None) -> LineResponse:
        """POST ``body`` to ``url`` with the rights of the key whose digest is ``owner_key``."""
        request_id = f"req_{secrets.token_hex(12)}"
        _owner_key.set(owner_key)  # this task's context only; read by ``internal_asgi``
        try:
            response = await self._client.post(url, json=body, headers={"X-Request-Id": request_id})
        except Exception as error:  # a route that crashed: answer like the server's generic 500
            return LineResponse(
                500,
                request_id,
                {
                    "error": {
                        "message": f"internal error ({type(error).__name__})",
                        "type": "server_error",
                        "param": None,
                        "code": "internal_error",
                    }
                },
            )
        try:
            payload: Any = response.json()
        except json.JSONDecodeError:
            payload = {
                "error": {
                    "message": response.text[:1000],
                    "type": "server_error",
                    "param": None,
                    "code": "invalid_response",
                }
            }
        return LineResponse(response.status_code, request_id, payload)

    async def post_until_answered(
        self, url: str, body: dict[str, Any], lifecycle: Lifecycle, owner_key: str | None = None
    ) -> LineResponse | None:
        """The line's response. "Busy" (429) is waited out, however long it lasts: a batch
        yields to interactive traffic rather than failing. "Unavailable" (503) is retried a
        few times. None if the server stopped serving meanwhile: the line stays unanswered,
        for the next run, rather than ending with an error it did not cause."""
        response = await self.post(url, body, owner_key)
        attempt = 0
        while response.status_code in RETRYABLE:
            attempt += 1
            if response.status_code == 503 and attempt >= MAX_UNAVAILABLE_ATTEMPTS:
                break
            if not await lifecycle.wait_ready():
                return None
            await asyncio.sleep(min(0.5 * 2**attempt, 10))
            response = await self.post(url, body, owner_key)
        return response

    async def aclose(self) -> None:
        await self._client.aclose()
