"""Tools: what the model is told, the grammar a forced call is held to, calls read back.

``tool_choice`` "required" or a named function constrains the answer to
``{"name": ..., "arguments": ...}`` with the arguments held to the function's
parameter schema by the same grammar path as wrappers. "auto" leaves the answer free
and recognises a call only if the whole answer is such an object that validates.
"none" (or no tools) ignores them.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from server.engine.protocol import ChatMessage
from server.openai.protocol import FunctionCall, FunctionDefinition, ToolCall, ToolChoice, ToolDefinition
from server.structured.grammar import CompiledGrammar
from wrappers.errors import BadRequest

__all__ = [
    "ToolPlan",
    "call_schema",
    "parameter_schemas",
    "plan_tools",
    "read_tool_calls",
    "tools_message",
    "with_tools",
]

_EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class ToolPlan:
    functions: dict[str, FunctionDefinition]
    forced: tuple[str, ...]  # functions one of which must be called; empty for "auto"

    @property
    def schema(self) -> dict[str, Any] | None:
        """The grammar's schema when a call is forced."""
        if not self.forced:
            return None
        return call_schema([self.functions[name] for name in self.forced])


def plan_tools(tools: Sequence[ToolDefinition] | None, choice: ToolChoice | None) -> ToolPlan | None:
    if not tools:
        if choice not in (None, "none", "auto"):
            raise BadRequest("tool_choice asks for a tool call but no tools were given", param="tool_choice")
        return None
    functions: dict[str, FunctionDefinition] = {}
    for index, tool in enumerate(tools):
        if tool.function.name in functions:
            raise BadRequest(f"two tools are named {tool.function.name!r}", param=f"tools.{index}")
        functions[tool.function.name] = tool.function
    if choice == "none":
        return None
    if choice is None or choice == "auto":
        return ToolPlan(functions, ())
    if choice == "required":
        return ToolPlan(functions, tuple(functions))
    if choice.function.name not in functions:
        raise BadRequest(
            f"tool_choice names {choice.function.name!r}, which is not among the tools", param="tool_choice"
        )
    return ToolPlan(functions, (choice.function.name,))


def _rewrite_refs(node: Any, prefix: str) -> Any:
    """Point a function's local ``$ref``s at its definitions hoisted to the root."""
    if isinstance(node, list):
        return [_rewrite_refs(item, prefix) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            if value == "#":
                value = f"#/$defs/{prefix}"
            else:
                for local in ("#/$defs/", "#/definitions/"):
                    if value.startswith(local):
                        value = f"#/$defs/{prefix}__{value[len(local) :]}"
            out[key] = value
        elif key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: _rewrite_refs(sub, prefix) for name, sub in value.items()}
        else:
            out[key] = _rewrite_refs(value, prefix)
    return out


def call_schema(functions: Sequence[FunctionDefinition]) -> dict[str, Any]:
    """``{"name", "arguments"}`` for each function; ``anyOf`` over them when there are several."""
    definitions: dict[str, Any] = {}
    variants = []
    for index, function in enumerate(functions):
        parameters = function.parameters or _EMPTY_PARAMETERS
        prefix = f"fn{index}"
        body = _rewrite_refs(parameters, prefix)
        for key in ("$defs", "definitions"):
            for name, sub in (body.pop(key, None) or {}).items():
                definitions[f"{prefix}__{name}"] = sub
        body.pop("$schema", None)
        definitions[prefix] = body
        variants.append(
            {
                "type": "object",
                "properties": {"name": {"const": function.name}, "arguments": {"$ref": f"#/$defs/{prefix}"}},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    schema: dict[str, Any] = variants[0] if len(variants) == 1 else {"anyOf": variants}
    return {**schema, "$defs": definitions}


def tools_message(plan: ToolPlan) -> ChatMessage:
    """The functions, described to the model in a system message."""
    lines = ["You can call these functions:"]
    for function in plan.functions.values():
        parameters = json.dumps(function.parameters or _EMPTY_PARAMETERS, separators=(",", ":"))
        lines.append(
            f"- {function.name}: {function.description or ''} Parameters (JSON Schema): {parameters}"
        )
    shape = 'a JSON object {"name": <function name>, "arguments": <its arguments>}'
    if len(plan.forced) == 1:
        lines.append(f"Call the function {plan.forced[0]} now: answer with {shape}.")
    elif plan.forced:
        lines.append(f"Call one of them now: answer with {shape}.")
    else:
        lines.append(f"To call one, answer with only {shape}; otherwise answer normally.")
    return ChatMessage(role="system", content="\n".join(lines))


def with_tools(messages: list[ChatMessage], plan: ToolPlan) -> list[ChatMessage]:
    """The tools message merged into a leading system message, or put first."""
    described = tools_message(plan)
    if messages and messages[0].role == "system":
        merged = ChatMessage(role="system", content=f"{messages[0].content}\n\n{described.content}")
        return [merged, *messages[1:]]
    return [described, *messages]


def parameter_schemas(plan: ToolPlan) -> dict[str, tuple[str, dict[str, Any]]]:
    """function name -> (its request field, its parameters' schema), to compile and vet."""
    return {
        name: (f"tools.{index}.function.parameters", function.parameters or _EMPTY_PARAMETERS)
        for index, (name, function) in enumerate(plan.functions.items())
    }


_CUT_CALL = re.compile(r'\{"name":"([A-Za-z0-9_-]{1,64})","arguments":(.*)\Z', re.DOTALL)


def read_cut_tool_call(text: str, plan: ToolPlan) -> list[ToolCall] | None:
    """A forced call cut off by ``max_tokens``: its name and the arguments so far (as
    OpenAI returns a partial call with ``finish_reason: "length"``); None before the name
    is complete."""
    match = _CUT_CALL.match(text) if plan.forced else None
    if match is None or match.group(1) not in plan.functions:
        return None
    return [
        ToolCall(
            id=f"call_{uuid.uuid4().hex[:24]}",
            function=FunctionCall(name=match.group(1), arguments=match.group(2)),
        )
    ]


def read_tool_calls(
    text: str, plan: ToolPlan, validators: Mapping[str, CompiledGrammar]
) -> list[ToolCall] | None:
    """The call in an answer, or None if the answer is not a call to one of the functions
    with arguments valid against its parameters (``validators``: by function name)."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(value, dict) or set(value) != {"name", "arguments"}:
        return None
    function = plan.functions.get(value["name"]) if isinstance(value["name"], str) else None
    if function is None or validators[function.name].validation_errors(value["arguments"]):
        return None
    return [
        ToolCall(
            id=f"call_{uuid.uuid4().hex[:24]}",
            function=FunctionCall(name=function.name, arguments=json.dumps(value["arguments"])),
        )
    ]
