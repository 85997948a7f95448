"""Cancel a request's handler when its client goes away, so its engine slot is freed.

uvicorn does not cancel a handler when the connection drops: a non-streaming request
would keep generating for nobody until ``max_tokens``. Once the request body has been
read, this middleware watches the connection; on ``http.disconnect`` it cancels the
handler task, and the engine interface turns that cancellation into an abort of the
engine request. Handlers that ask for messages after the body (streaming responses
listening for disconnects) are told about the disconnect through the same watcher.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DISCONNECTED_SCOPE", "DisconnectMiddleware"]

DISCONNECTED_SCOPE = "wrapserve.disconnected"


class DisconnectMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = asyncio.Event()
        disconnected = asyncio.Event()
        finished = False

        async def guarded_receive() -> Message:
            if body_done.is_set():
                await disconnected.wait()
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected.set()
            elif not message.get("more_body", False):
                body_done.set()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal finished
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        handler = asyncio.ensure_future(self.app(scope, guarded_receive, guarded_send))

        async def watch() -> None:
            await body_done.wait()
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    scope[DISCONNECTED_SCOPE] = True
                    if not finished:
                        handler.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            await handler
        except asyncio.CancelledError:
            if not disconnected.is_set():
                raise  # cancelled from outside (shutdown), not by the client leaving
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
