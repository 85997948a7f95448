"""Per-request observability as pure ASGI middleware: request id, access log, metrics.

Every response carries ``X-Request-ID`` (the client's if it is sane, else a new one);
the id is in ``request.state.request_id`` for handlers and error logs. One structured
log line per request (method, route template, status, latency; never the body). Route
labels are templates (``/v1/wrappers/{name}/invoke``), and the wrapper label only ever
holds registered names, so a client cannot grow the metrics without bound.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.http.metrics import Metrics
from server.http.middleware.disconnect import DISCONNECTED_SCOPE

__all__ = ["WRAPPER_SCOPE", "ObserveMiddleware", "note_wrapper"]

log = logging.getLogger("wrapserve.access")

WRAPPER_SCOPE = "wrapserve.wrapper"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def note_wrapper(scope: Scope, name: str) -> None:
    """Let a route name the wrapper it ran (e.g. ``model="wrapper:NAME"`` on chat)."""
    scope[WRAPPER_SCOPE] = name


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _SANE_ID.fullmatch(text):
                return text
            break
    return f"req_{secrets.token_hex(12)}"


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class ObserveMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, known_wrapper: Callable[[str], bool]) -> None:
        self.app = app
        self.metrics = metrics
        self.known_wrapper = known_wrapper

    def _wrapper(self, scope: Scope) -> str:
        name = scope.get(WRAPPER_SCOPE)
        if name is None and "/wrappers/{name}" in _route_template(scope):
            name = scope.get("path_params", {}).get("name")
        return name if isinstance(name, str) and self.known_wrapper(name) else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if not status:  # nothing was sent: the client left (499, nginx's code) or a crash
                status = 499 if scope.get(DISCONNECTED_SCOPE) else 500
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(route, method, self._wrapper(scope), str(status)).inc()
            self.metrics.latency.labels(route, method).observe(elapsed)
            log.info(
                "%s %s %d %.1fms",
                method,
                route,
                status,
                elapsed * 1000,
                extra={
                    "request_id": request_id,
                    "method": method,
                    "route": route,
                    "status": status,
                    "latency_ms": round(elapsed * 1000, 2),
                },
            )
