"""Errors to HTTP, in one place, in OpenAI's shape: ``{"error": {message, type, param, code}}``.

No traceback or internal detail ever reaches a client; unexpected exceptions are
logged with the request id and answered with a generic 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from wrappers.errors import Overloaded, WrapserveError

__all__ = ["error_body", "install_error_handlers"]

log = logging.getLogger("wrapserve.errors")

_STATUS_TYPES = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "forbidden"),
    404: ("not_found_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", "invalid_value"),
    429: ("rate_limit_error", "overloaded"),
    503: ("server_error", "engine_unavailable"),
}


def error_body(message: str, type_: str, code: str, param: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code, **extra}}


async def _wrapserve_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, WrapserveError)
    extra = {key: value for key, value in exc.details.items() if value is not None}
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, Overloaded) else None
    if exc.status >= 500:
        log.warning("request failed: %s (%s)", exc.message, exc.code)
    return JSONResponse(
        error_body(exc.message, exc.type, exc.code, exc.param, **extra),
        status_code=exc.status,
        headers=headers,
    )


def _field_path(location: tuple[Any, ...]) -> str:
    parts = [str(part) for part in location if part not in ("body",)]
    return ".".join(parts) or "body"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    param = _field_path(tuple(first.get("loc", ())))
    message = "; ".join(f"{_field_path(tuple(e.get('loc', ())))}: {e.get('msg')}" for e in errors[:5])
    return JSONResponse(error_body(message, "invalid_request_error", "invalid_value", param), status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    type_, code = _STATUS_TYPES.get(exc.status_code, ("invalid_request_error", "error"))
    return JSONResponse(
        error_body(str(exc.detail), type_, code), status_code=exc.status_code, headers=exc.headers
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", "-")
    log.error("unhandled error in request %s", request_id, exc_info=exc)
    return JSONResponse(
        error_body(f"internal error (request id {request_id})", "server_error", "internal_error"),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    # The handlers are async: Starlette runs a plain ``def`` handler in its thread pool, a
    # thread hop for every refusal, which under a flood of 429s is where it hurts.
    app.add_exception_handler(WrapserveError, _wrapserve_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
