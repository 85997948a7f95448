"""Server-sent events in OpenAI's framing: ``data: {chunk}`` ... ``data: [DONE]``.

An error after the stream has started cannot change the status any more; it is sent
as ``data: {"error": {...}}`` (which the ``openai`` SDK raises as an ``APIError``) and
the stream ends cleanly. When the client goes away, the event source is closed even
if the response was cancelled mid-send: closing it closes the engine stream, which
aborts the engine request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anyio
from pydantic import BaseModel
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from server.engine.protocol import StreamDelta
from server.http.errors import error_body
from wrappers.errors import WrapserveError

__all__ = ["EventStream", "close_stream", "first_delta", "resumed"]

log = logging.getLogger("wrapserve.openai")


def _event(payload: str) -> str:
    return f"data: {payload}\n\n"


async def _frames(
    stream_id: str, events: AsyncIterator[BaseModel], state: dict[str, bool]
) -> AsyncGenerator[str]:
    try:
        async for event in events:
            yield _event(event.model_dump_json())
    except WrapserveError as error:
        log.warning("stream %s failed: %s (%s)", stream_id, error.message, error.code)
        yield _event(json.dumps(error_body(error.message, error.type, error.code, error.param)))
    except Exception:
        log.exception("stream %s failed", stream_id)
        body = error_body(f"internal error (stream {stream_id})", "server_error", "internal_error")
        yield _event(json.dumps(body))
    yield _event("[DONE]")
    state["finished"] = True


class EventStream(StreamingResponse):
    """A ``text/event-stream`` response that always closes its event source."""

    def __init__(self, stream_id: str, events: AsyncGenerator[BaseModel]) -> None:
        self._stream_id = stream_id
        self._events = events
        self._state = {"finished": False}
        super().__init__(
            _frames(stream_id, events, self._state),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                frames: Any = self.body_iterator
                await frames.aclose()
                await self._events.aclose()
            if not self._state["finished"]:
                log.info("stream %s: the client went away; engine request aborted", self._stream_id)


async def first_delta(stream: AsyncIterator[StreamDelta]) -> StreamDelta | None:
    """Wait for the engine's first delta before answering, so that an engine-side error
    (a grammar that fails to build) is still a proper 4xx/5xx and not a broken stream."""
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None
    except BaseException:
        await close_stream(stream)
        raise


class resumed:
    """``first`` (as ``first_delta`` took it) and then the rest of ``stream``. Closing it
    (``contextlib.aclosing``) closes ``stream``, which aborts the engine request, also when
    nothing was read yet (an async generator that never started would skip its cleanup)."""

    def __init__(self, first: StreamDelta | None, stream: AsyncIterator[StreamDelta]) -> None:
        self._first = first
        self._ended = first is None  # first_delta saw the stream end
        self._stream = stream

    def __aiter__(self) -> resumed:
        return self

    async def __anext__(self) -> StreamDelta:
        if self._ended:
            raise StopAsyncIteration
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return await anext(self._stream)

    async def aclose(self) -> None:
        await close_stream(self._stream)


async def close_stream(stream: object) -> None:
    """Close an async generator (an engine stream, or one built on it); a plain iterator
    has nothing to close."""
    closer = getattr(stream, "aclose", None)
    if closer is not None:
        await closer()
