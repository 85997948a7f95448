"""Small helpers for the pure ASGI middleware: answer with an error in OpenAI's shape."""

from __future__ import annotations

import json

from starlette.types import Send

from server.http.errors import error_body
from wrappers.errors import Overloaded, WrapserveError

__all__ = ["send_error"]


async def send_error(send: Send, error: WrapserveError, headers: dict[str, str] | None = None) -> None:
    """Send a complete JSON error response (the response must not have started)."""
    body = json.dumps(error_body(error.message, error.type, error.code, error.param)).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    extra = dict(headers or {})
    if isinstance(error, Overloaded):
        extra["Retry-After"] = str(error.retry_after_s)
    raw_headers += [(name.lower().encode(), value.encode("latin-1")) for name, value in extra.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
