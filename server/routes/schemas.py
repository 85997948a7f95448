"""``POST /v1/schemas/check``: how a schema would be enforced, without generating.

For application teams' CI: given a JSON Schema (or a wrapper), it answers whether the
schema is accepted, which class each keyword at each path falls into (grammar,
validated, refused: ``server/structured/keywords.py``), the grammar form it compiles to
and the compile time. A refusal is an answer here (``accepted: false``), not an error.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from server.http.middleware.auth import check_wrapper_allowed
from server.state import ServerState, get_state
from server.structured.grammar import CompileMode
from server.structured.longest import longest_match
from server.structured.policy import SchemaRejected

__all__ = ["router"]

router = APIRouter(tags=["schemas"])


class SchemaCheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    json_schema: Any = Field(default=None, alias="schema", description="A JSON Schema to check.")
    wrapper: str | None = Field(default=None, description="Or a wrapper's name: checks its output schema.")
    version: str | None = Field(default=None, description="The wrapper's version; latest if omitted.")

    @model_validator(mode="after")
    def _one_of_them(self) -> SchemaCheckRequest:
        if (self.json_schema is None) == (self.wrapper is None):
            raise ValueError("give exactly one of schema and wrapper")
        return self


@router.post("/v1/schemas/check")
async def check_schema(
    body: SchemaCheckRequest, state: Annotated[ServerState, Depends(get_state)], request: Request
) -> dict[str, Any]:
    schema, subject = body.json_schema, {}
    mode: CompileMode = "json"  # what a client's response_format compiles to
    if body.wrapper is not None:
        check_wrapper_allowed(request, body.wrapper.partition("@")[0])
        wrapper, _ = state.wrappers.route(body.wrapper, body.version)  # a version or a channel
        schema = wrapper.static_schema() or wrapper.Output.model_json_schema()
        mode, subject = "regex", {"wrapper": wrapper.name, "version": wrapper.version}
    try:
        grammar = await state.grammars.compile(schema, prefer=mode)
    except SchemaRejected as error:
        return {
            "object": "schema.check",
            **subject,
            "accepted": False,
            "error": {"message": error.message, "code": error.code, **error.details},
        }
    assert grammar.constraint is not None  # compiled for decoding, not validation only
    # Read off the regex (linear in its size, off the loop: a schema may be 256 kB).
    longest = await asyncio.to_thread(longest_match, grammar.regex) if grammar.regex else None
    return {
        "object": "schema.check",
        **subject,
        "accepted": True,
        "grammar": "outlines-regex" if grammar.constraint.kind == "regex" else "llguidance-json",
        "compile_ms": round(grammar.compile_ms, 3),
        # Characters in the longest answer the grammar admits; None when unbounded (or not
        # computed: the llguidance-json form). Within max_tokens, no answer is cut off.
        "longest_answer_chars": longest,
        "keywords": [
            {"path": use.path, "keyword": use.keyword, "enforcement": use.enforcement.value}
            for use in grammar.uses
        ],
        "validated_only": sorted({use.keyword for use in grammar.uses if use.enforcement == "validated"}),
        "warnings": list(grammar.warnings),
    }
