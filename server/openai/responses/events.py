"""A response as the Responses API's typed stream events, each with its ``sequence_number``.

``response.created`` and ``response.in_progress`` open the stream; each output item is
announced (``response.output_item.added``), its text or arguments sent as deltas
(``response.output_text.delta``, ``response.function_call_arguments.delta``) and closed
(``...done``, ``response.output_item.done``); ``response.completed`` (or
``response.incomplete`` when cut off by ``max_output_tokens``) carries the whole response.
A plain text answer streams as the engine generates it; tool calls and wrapper answers are
sent once known whole (their arguments are only known to be complete then).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from server.openai.streaming import close_stream

__all__ = ["EventWriter", "ResponseEvent", "live_text_events", "whole_response_events"]


class ResponseEvent(BaseModel):
    """One event; its fields are the event's own (``type``, ``sequence_number``, ...)."""

    model_config = ConfigDict(extra="allow")

    type: str
    sequence_number: int


class EventWriter:
    def __init__(self) -> None:
        self._sequence = 0

    def event(self, kind: str, **fields: Any) -> ResponseEvent:
        event = ResponseEvent.model_validate({"type": kind, "sequence_number": self._sequence, **fields})
        self._sequence += 1
        return event

    def opening(self, skeleton: dict[str, Any]) -> list[ResponseEvent]:
        return [
            self.event("response.created", response=skeleton),
            self.event("response.in_progress", response=skeleton),
        ]

    def _in_part(self, kind: str, index: int, item_id: str, **fields: Any) -> ResponseEvent:
        """An event about the (one) content part of the message at ``index``."""
        return self.event(kind, item_id=item_id, output_index=index, content_index=0, **fields)

    def message_opening(self, index: int, item: dict[str, Any]) -> list[ResponseEvent]:
        opened = {**item, "status": "in_progress", "content": []}
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return [
            self.event("response.output_item.added", output_index=index, item=opened),
            self._in_part("response.content_part.added", index, item["id"], part=part),
        ]

    def text_delta(self, index: int, item_id: str, text: str) -> ResponseEvent:
        return self._in_part("response.output_text.delta", index, item_id, delta=text, logprobs=[])

    def message_closing(self, index: int, item: dict[str, Any]) -> list[ResponseEvent]:
        part = item["content"][0]
        return [
            self._in_part("response.output_text.done", index, item["id"], text=part["text"], logprobs=[]),
            self._in_part("response.content_part.done", index, item["id"], part=part),
            self.event("response.output_item.done", output_index=index, item=item),
        ]

    def whole_item(self, index: int, item: dict[str, Any]) -> list[ResponseEvent]:
        if item["type"] == "message":
            text = item["content"][0]["text"]
            return [
                *self.message_opening(index, item),
                self.text_delta(index, item["id"], text),
                *self.message_closing(index, item),
            ]
        opened = {**item, "status": "in_progress", "arguments": ""}
        return [
            self.event("response.output_item.added", output_index=index, item=opened),
            self.event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=index,
                delta=item["arguments"],
            ),
            self.event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                arguments=item["arguments"],
                name=item["name"],
            ),
            self.event("response.output_item.done", output_index=index, item=item),
        ]

    def closing(self, response: dict[str, Any]) -> ResponseEvent:
        kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        return self.event(kind, response=response)


def _skeleton(response: dict[str, Any]) -> dict[str, Any]:
    opened = copy.deepcopy(response)
    opened.update(status="in_progress", output=[], usage=None, incomplete_details=None)
    return opened


async def whole_response_events(response: dict[str, Any]) -> AsyncGenerator[ResponseEvent]:
    """The events of a response already complete (tool calls, wrapper answers)."""
    writer = EventWriter()
    for event in writer.opening(_skeleton(response)):
        yield event
    for index, item in enumerate(response["output"]):
        for event in writer.whole_item(index, item):
            yield event
    yield writer.closing(response)


async def live_text_events(
    skeleton: dict[str, Any],
    message_id: str,
    texts: AsyncIterator[str],
    finish: Callable[[], Awaitable[dict[str, Any]]],
) -> AsyncGenerator[ResponseEvent]:
    """A text answer's events as it is generated: ``texts`` yields its pieces, then
    ``finish`` returns the complete response (checked, and stored if asked)."""
    writer = EventWriter()
    for event in writer.opening(skeleton):
        yield event
    for event in writer.message_opening(0, {"id": message_id, "type": "message", "role": "assistant"}):
        yield event
    try:
        async for text in texts:
            if text:
                yield writer.text_delta(0, message_id, text)
    finally:  # a client gone mid-stream: closing the texts closes the engine stream (abort)
        await close_stream(texts)
    response = await finish()
    for event in writer.message_closing(0, response["output"][0]):
        yield event
    yield writer.closing(response)
