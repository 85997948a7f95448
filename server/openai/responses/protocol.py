"""The Responses API's request shape (pydantic), lenient as the chat one: unknown fields
are ignored; what this server cannot do is refused with a 400 in ``translate.py``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from server.openai.protocol import JsonSchemaFormat, LenientRequest

__all__ = ["FunctionTool", "InputItem", "PromptRef", "ResponsesRequest", "TextConfig", "TextFormat"]


class InputContent(LenientRequest):
    type: str  # input_text and output_text are read; anything else is refused
    text: str | None = None


class InputItem(LenientRequest):
    """A message (``role`` + ``content``), a ``function_call`` or a ``function_call_output``."""

    type: str | None = None  # "message" when absent
    id: str | None = None
    role: Literal["user", "system", "developer", "assistant"] | None = None
    content: str | list[InputContent] | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | list[InputContent] | None = None


class FunctionTool(LenientRequest):
    type: str  # only "function": hosted tools (web search, files...) are not served here
    name: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamedFunction(LenientRequest):
    type: Literal["function"]
    name: str


class TextFormat(JsonSchemaFormat):
    """Chat's ``json_schema`` format, flattened into ``text.format`` with its type."""

    type: Literal["text", "json_object", "json_schema"]


class TextConfig(LenientRequest):
    format: TextFormat | None = None


class PromptRef(LenientRequest):
    """A wrapper as a reusable prompt: ``id`` its name, ``variables`` its input."""

    id: str
    version: str | None = None
    variables: dict[str, Any] | None = None


class ResponsesRequest(LenientRequest):
    model: str | None = None  # optional with ``prompt``: the wrapper decides
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedFunction | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    stream: bool | None = False
    metadata: dict[str, str] | None = None
    store: bool | None = True
    previous_response_id: str | None = None
    prompt: PromptRef | None = None
    user: str | None = None
    # Refused when set (translate.py): work this server does not do.
    background: bool | None = None
    conversation: Any = None
