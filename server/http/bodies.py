"""A JSON request body validated in one pydantic-core pass, for the routes where it matters.

FastAPI's body parameters read the body, parse its Content-Type with the standard
library's email parser, decode the JSON with ``json`` and then validate the objects: on
the hot wrapper route that was a measurable share of a call's CPU (benchmarks/RESULTS.md,
"API-process CPU per call"). ``parse_body`` decodes and validates the bytes at once and
raises the same ``RequestValidationError`` (locations under ``body``), so the error a
client gets is the one every other route gives (server/http/errors.py). ``body_openapi``
documents the body as FastAPI would have.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

__all__ = ["body_openapi", "parse_body"]

M = TypeVar("M", bound=BaseModel)

_JSON_TYPES = ("application/json",)


def _is_json(content_type: str | None) -> bool:
    if not content_type:  # as FastAPI: no Content-Type is read as JSON
        return True
    media = content_type.partition(";")[0].strip().lower()
    return media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


def parse_body(model: type[M], body: bytes, content_type: str | None) -> M:
    """``body`` as ``model``; a missing, non-JSON, malformed or invalid body is a 422."""
    if not body:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    if not _is_json(content_type):
        raise RequestValidationError(
            [
                {
                    "type": "model_attributes_type",
                    "loc": ("body",),
                    "msg": "the body must be JSON",
                    "input": None,
                }
            ]
        )
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        if error.errors()[0]["type"] != "json_invalid":
            raise _under_body(error) from None
    # pydantic-core's parser refuses some JSON that Python's reads (a lone surrogate
    # escape, which the fields' own checks then name): read it as FastAPI did.
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as error:
        message = error.msg if isinstance(error, json.JSONDecodeError) else "nested too deeply"
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body",),
                    "msg": f"JSON decode error: {message}",
                    "input": None,
                }
            ]
        ) from None
    try:
        return model.model_validate(value)
    except ValidationError as error:
        raise _under_body(error) from None


def _under_body(error: ValidationError) -> RequestValidationError:
    return RequestValidationError(
        [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False, include_input=False)]
    )


def body_openapi(model: type[BaseModel]) -> dict[str, Any]:
    """The ``openapi_extra`` of a route that reads ``model`` with ``parse_body``. The model's
    nested models are referred to in the document's components, which the route's module
    must have registered there (a route that takes them as FastAPI parameters does)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
    }
