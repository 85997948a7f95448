"""Responses <-> chat: a Responses request becomes a chat completion request (one path to
the engine, the grammar and the answer checks), and the chat answer becomes a response.

A conversation is kept as chat messages: ``previous_response_id`` continues it with the
stored messages (not the earlier ``instructions``, as in OpenAI's API).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from server.limits import check_unicode
from server.openai.protocol import ChatCompletion, ChatCompletionRequest
from server.openai.responses.protocol import InputContent, ResponsesRequest
from wrappers.errors import BadRequest

__all__ = [
    "chat_messages",
    "chat_request",
    "check_request",
    "input_items",
    "new_id",
    "output_items",
    "response_object",
]

_TEXT_PARTS = {"input_text", "output_text", "text"}
_MAX_METADATA = (16, 64, 512)  # pairs, key characters, value characters (OpenAI's bounds)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def _text(content: str | list[InputContent] | None, param: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for index, part in enumerate(content):
        if part.type not in _TEXT_PARTS:
            raise BadRequest(
                f"content of type {part.type!r} is not supported: this server takes text only",
                param=f"{param}.{index}.type",
            )
        parts.append(part.text or "")
    return "\n".join(parts)


def input_items(body: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's input as stored items (ids given), the shape ``input_items`` lists."""
    if body.input is None:
        return []
    if isinstance(body.input, str):
        return [_message_item("user", body.input, "input_text")]
    items = []
    for index, item in enumerate(body.input):
        param = f"input.{index}"
        kind = item.type or "message"
        if kind == "message":
            if item.role is None:
                raise BadRequest("a message item needs a role", param=f"{param}.role")
            part = "output_text" if item.role == "assistant" else "input_text"
            items.append(_message_item(item.role, _text(item.content, f"{param}.content"), part, item.id))
        elif kind == "function_call":
            if not item.call_id or not item.name:
                raise BadRequest("a function_call item needs call_id and name", param=param)
            items.append(
                {
                    "id": item.id or new_id("fc"),
                    "type": "function_call",
                    "call_id": item.call_id,
                    "name": item.name,
                    "arguments": item.arguments or "",
                    "status": "completed",
                }
            )
        elif kind == "function_call_output":
            if not item.call_id:
                raise BadRequest("a function_call_output item needs call_id", param=f"{param}.call_id")
            items.append(
                {
                    "id": item.id or new_id("fco"),
                    "type": "function_call_output",
                    "call_id": item.call_id,
                    "output": _text(item.output, f"{param}.output"),
                    "status": "completed",
                }
            )
        else:
            raise BadRequest(
                f"input items of type {kind!r} are not supported (message, function_call, "
                "function_call_output)",
                param=f"{param}.type",
            )
    return items


def _message_item(role: str, text: str, part: str, item_id: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"type": part, "text": text}
    if part == "output_text":
        content["annotations"] = []
    return {
        "id": item_id or new_id("msg"),
        "type": "message",
        "role": role,
        "content": [content],
        "status": "completed",
    }


def chat_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored items as chat messages; consecutive function calls are one assistant turn."""
    messages: list[dict[str, Any]] = []
    for item in items:
        if item["type"] == "message":
            text = "\n".join(part.get("text", "") for part in item["content"])
            messages.append({"role": item["role"], "content": text})
        elif item["type"] == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
    return messages


def _check_texts(body: ResponsesRequest) -> None:
    """Every string of the request is valid Unicode (no lone surrogate): it is stored and
    echoed, and SQLite and the JSON response encode UTF-8. Walked with a stack, not
    recursion: tool parameters may nest deep."""
    stack: list[tuple[str, Any]] = [("", body.model_dump(by_alias=True, exclude_none=True))]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            check_unicode(value, path or "body")
        elif isinstance(value, dict):
            for key, item in value.items():
                check_unicode(str(key), path or "body")
                stack.append((f"{path}.{key}" if path else str(key), item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{index}", item) for index, item in enumerate(value))


def check_request(body: ResponsesRequest) -> None:
    """What this server does not do is a 400, not silently something else."""
    _check_texts(body)
    if body.background:
        raise BadRequest("background responses are not supported; stream instead", param="background")
    if body.conversation is not None:
        raise BadRequest(
            "conversation objects are not supported; use previous_response_id", param="conversation"
        )
    pairs, key_chars, value_chars = _MAX_METADATA
    metadata = body.metadata
    if metadata is None:
        return
    if len(metadata) > pairs:
        raise BadRequest(f"metadata holds at most {pairs} pairs", param="metadata")
    for key, value in metadata.items():
        if len(key) > key_chars or len(value) > value_chars:
            raise BadRequest(
                f"metadata keys are at most {key_chars} characters and values at most {value_chars}",
                param="metadata",
            )


def _text_format(body: ResponsesRequest) -> dict[str, Any] | None:
    form = body.text.format if body.text is not None else None
    if form is None or form.type == "text":
        return None
    if form.type == "json_object":
        return {"type": "json_object"}
    if form.schema_ is None:
        raise BadRequest("a json_schema format needs a schema", param="text.format.schema")
    return {"type": "json_schema", "json_schema": form.model_dump(by_alias=True, exclude={"type"})}


def _tools(body: ResponsesRequest) -> list[dict[str, Any]] | None:
    if not body.tools:
        return None
    tools = []
    for index, tool in enumerate(body.tools):
        if tool.type != "function":
            raise BadRequest(
                f"tools of type {tool.type!r} are not served here; function tools are",
                param=f"tools.{index}.type",
            )
        if not tool.name:
            raise BadRequest("a function tool needs a name", param=f"tools.{index}.name")
        function = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
        tools.append({"type": "function", "function": {**function, "strict": tool.strict}})
    return tools


def chat_request(body: ResponsesRequest, messages: list[dict[str, Any]], model: str) -> ChatCompletionRequest:
    """The chat request this response is generated by."""
    if body.instructions:
        messages = [{"role": "system", "content": body.instructions}, *messages]
    if not messages:
        raise BadRequest("input is empty", param="input")
    choice = body.tool_choice
    tool_choice: Any = (
        {"type": "function", "function": {"name": choice.name}}
        if choice is not None and not isinstance(choice, str)
        else choice
    )
    payload: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "seed": body.seed,
        "max_completion_tokens": body.max_output_tokens,
        "user": body.user,
        "response_format": _text_format(body),
        "tools": _tools(body),
    }
    if tool_choice is not None:
        payload["tool_choice"] = tool_choice
    return ChatCompletionRequest.model_validate(payload)


def output_items(completion: ChatCompletion) -> list[dict[str, Any]]:
    choice = completion.choices[0]
    if choice.message.tool_calls:
        return [
            {
                "id": new_id("fc"),
                "type": "function_call",
                "call_id": call.id,
                "name": call.function.name,
                "arguments": call.function.arguments,
                "status": "incomplete" if choice.finish_reason == "length" else "completed",
            }
            for call in choice.message.tool_calls
        ]
    item = _message_item("assistant", choice.message.content or "", "output_text")
    item["content"][0]["logprobs"] = []
    if choice.finish_reason == "length":
        item["status"] = "incomplete"
    return [item]


def response_object(
    response_id: str,
    body: ResponsesRequest,
    *,
    model: str,
    created_at: int | None = None,
    completion: ChatCompletion | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The response in OpenAI's shape; without ``completion``, the in-progress skeleton."""
    form = body.text.format if body.text is not None and body.text.format is not None else None
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at or int(time.time()),
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "model": model,
        "output": [],
        "parallel_tool_calls": body.parallel_tool_calls if body.parallel_tool_calls is not None else True,
        "previous_response_id": body.previous_response_id,
        "store": body.store is not False,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "tool_choice": body.tool_choice.model_dump()
        if body.tool_choice is not None and not isinstance(body.tool_choice, str)
        else (body.tool_choice or "auto"),
        "tools": [tool.model_dump(exclude_none=True) for tool in body.tools or []],
        "text": {"format": form.model_dump(by_alias=True, exclude_none=True) if form else {"type": "text"}},
        "truncation": "disabled",
        "usage": None,
        "metadata": body.metadata or {},
        "user": body.user,
        **(extra or {}),
    }
    if completion is None:
        return response
    cut = completion.choices[0].finish_reason == "length"
    usage = completion.usage
    cached = (usage.prompt_tokens_details or {}).get("cached_tokens", 0)
    response.update(
        status="incomplete" if cut else "completed",
        incomplete_details={"reason": "max_output_tokens"} if cut else None,
        output=output_items(completion),
        usage={
            "input_tokens": usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage.total_tokens,
        },
    )
    return response
