"""Connection bounds for the HTTP server: slow headers time out, connections are capped.

uvicorn times out idle keep-alive connections but not a connection that never finishes
its headers (300 of them stayed open for 90 s): the protocol below closes a connection
whose request headers are not complete ``header_timeout_s`` after it opened (or after the
previous response). ``limit_concurrency`` caps connections and requests; beyond it
uvicorn answers 503. Slow bodies are timed out by ``server/http/middleware/body_limit.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.limits import Limits

__all__ = ["HeaderTimeoutProtocol", "uvicorn_config"]


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline for each request's headers."""

    header_timeout_s: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # a keep-alive connection's next request
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()  # the next request's headers have the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def uvicorn_config(app: Any, limits: Limits, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration the server runs with: these bounds, plus ``options``."""
    protocol = type(
        "BoundedHttpProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": limits.header_timeout_s}
    )
    return uvicorn.Config(app, http=protocol, limit_concurrency=limits.max_connections, **options)
