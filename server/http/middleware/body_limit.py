"""Request body size bound as pure ASGI middleware: 413 before the body is buffered.

``Content-Length`` is checked up front; bodies without one (chunked) are counted as
they arrive and cut off at the bound, so a client cannot make the server buffer more
than the limit whatever headers it sends. Batch file uploads have their own, larger
bound (``Limits.max_batch_file_bytes``).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.http.asgi import send_error
from server.limits import Limits
from wrappers.errors import WrapserveError

__all__ = ["BodyLimitMiddleware", "PayloadTooLarge"]

UPLOAD_PATH = "/v1/files"
MULTIPART_SLACK = 64 * 1024


class PayloadTooLarge(WrapserveError):
    status = 413
    code = "request_too_large"
    type = "invalid_request_error"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    def _limit_for(self, path: str) -> int:
        if path.rstrip("/") == UPLOAD_PATH:
            return self.limits.max_batch_file_bytes + MULTIPART_SLACK
        return self.limits.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope["path"])
        too_large = PayloadTooLarge(f"the request body is larger than {limit} bytes", param="body")
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                declared = value.strip()
                if not declared.isdigit():
                    await send_error(send, PayloadTooLarge("invalid Content-Length header"))
                    return
                if int(declared) > limit:
                    await send_error(send, too_large, headers={"Connection": "close"})
                    return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracking_send)
        except PayloadTooLarge as error:
            # The routes' handlers map it when they read the body; this catches readers
            # outside them (middleware, streaming bodies).
            if started:
                raise
            await send_error(send, error, headers={"Connection": "close"})
