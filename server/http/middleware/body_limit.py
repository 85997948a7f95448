"""Request body bounds as pure ASGI middleware: 413 before the body is buffered, 408 for
a body that stalls.

``Content-Length`` is checked up front; bodies without one (chunked) are counted as
they arrive and cut off at the bound with the same 413, so a client cannot make the server
buffer more than the limit whatever headers it sends. Batch file uploads have their own,
larger bound (``Limits.max_batch_file_bytes``). Until the body is complete, each chunk must
arrive within ``Limits.body_timeout_s`` of the last (a body declaring 100 bytes and sending
4 is not waited on forever); after that, reads only wait for a disconnect, untimed.
Once this middleware has answered, the route sees a disconnect and what it sends is dropped.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.http.asgi import send_error
from server.limits import Limits
from wrappers.errors import WrapserveError

__all__ = ["BodyLimitMiddleware", "BodyTimeout", "PayloadTooLarge"]

UPLOAD_PATH = "/v1/files"
MULTIPART_SLACK = 64 * 1024


class PayloadTooLarge(WrapserveError):
    status = 413
    code = "request_too_large"
    type = "invalid_request_error"


class BodyTimeout(WrapserveError):
    status = 408
    code = "request_timeout"
    type = "invalid_request_error"


_DISCONNECT: Message = {"type": "http.disconnect"}


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
        started = answered = False
        body_done = False

        async def answer(error: WrapserveError) -> Message:
            nonlocal answered
            if started:  # the route already answers: it sees the error instead
                raise error
            answered = True
            await send_error(send, error, headers={"Connection": "close"})
            return _DISCONNECT

        async def bounded_receive() -> Message:
            nonlocal received, body_done
            if answered:
                return _DISCONNECT
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout(self.limits.body_timeout_s):  # a timer, no task
                    message = await receive()
            except TimeoutError:
                return await answer(
                    BodyTimeout(
                        f"the request body stalled for {self.limits.body_timeout_s:g} s", param="body"
                    )
                )
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    return await answer(too_large)
                body_done = not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # this middleware's answer stands; the route's is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except Exception:
            if not answered:  # after an answer, the route failing on the disconnect is expected
                raise
