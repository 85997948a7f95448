"""``response_format`` and forced tool calls -> a grammar, through the wrappers' compiler.

The same ``GrammarCompiler`` (same keyword policy, same cache) serves wrappers and
these routes, so a schema accepted here is enforced exactly as a wrapper's is.
"""

from __future__ import annotations

from typing import Any

from server.openai.chat.tools import ToolPlan
from server.openai.protocol import ResponseFormat
from server.structured.grammar import CompiledGrammar, CompileMode, GrammarCompiler, SchemaRejected
from wrappers.errors import BadRequest

__all__ = ["JSON_OBJECT_SCHEMA", "compile_for", "output_grammar"]

# json_object: any JSON object (llguidance's grammar is lazy, so unbounded nesting is cheap).
JSON_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}


async def compile_for(
    grammars: GrammarCompiler, schema: Any, param: str, *, prefer: CompileMode = "json"
) -> CompiledGrammar:
    """Compile a schema a request sent; a refusal names the request field it came from."""
    try:
        return await grammars.compile(schema, prefer=prefer)
    except SchemaRejected as error:
        raise SchemaRejected(error.message, param=param, **error.details) from None


async def output_grammar(
    response_format: ResponseFormat | None, tools: ToolPlan | None, grammars: GrammarCompiler
) -> CompiledGrammar | None:
    """The grammar the answer is held to, or None for free text.

    A forced tool call wins over ``response_format`` (which shapes content, and a forced
    call has none).
    """
    if tools is not None and (schema := tools.schema) is not None:
        return await compile_for(grammars, schema, "tools")
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return await compile_for(grammars, JSON_OBJECT_SCHEMA, "response_format")
    spec = response_format.json_schema
    if spec is None or spec.schema_ is None:
        raise BadRequest(
            "response_format of type json_schema needs json_schema.schema",
            param="response_format.json_schema",
        )
    return await compile_for(grammars, spec.schema_, "response_format.json_schema.schema")
