"""One error hierarchy for the whole project.

Services raise these; the HTTP layer maps them to responses in one place
(``server/http/errors.py``) and the CLI prints them as one line. Each error carries a
stable ``code``, the HTTP ``status`` it maps to, and whether retrying can help.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadRequest",
    "ConfigurationError",
    "Conflict",
    "EngineUnavailable",
    "Forbidden",
    "NotFound",
    "OutputInvalid",
    "OutputTruncated",
    "Overloaded",
    "Unauthorized",
    "WrapserveError",
]


class WrapserveError(Exception):
    """Base of every error Wrapserve raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    type: ClassVar[str] = "server_error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, param: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.details = details


class ConfigurationError(WrapserveError):
    """The server cannot start as configured; the message says how to fix it."""

    code = "configuration_error"


class BadRequest(WrapserveError):
    status = 400
    code = "invalid_request"
    type = "invalid_request_error"


class Unauthorized(WrapserveError):
    status = 401
    code = "invalid_api_key"
    type = "authentication_error"


class Forbidden(WrapserveError):
    status = 403
    code = "forbidden"
    type = "permission_error"


class NotFound(WrapserveError):
    status = 404
    code = "not_found"
    type = "not_found_error"


class Conflict(WrapserveError):
    """The request conflicts with the state of what it names (a file a running batch reads)."""

    status = 409
    code = "conflict"
    type = "invalid_request_error"


class Overloaded(WrapserveError):
    status = 429
    code = "overloaded"
    type = "rate_limit_error"
    retryable = True

    def __init__(self, message: str, *, retry_after_s: int = 1, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after_s = retry_after_s


class EngineUnavailable(WrapserveError):
    status = 503
    code = "engine_unavailable"
    type = "server_error"
    retryable = True


class OutputInvalid(WrapserveError):
    """The model's answer did not parse or validate; the raw text is kept."""

    status = 502
    code = "output_invalid"
    type = "server_error"

    def __init__(self, message: str, *, raw_output: str, finish_reason: str | None = None) -> None:
        super().__init__(message, raw_output=raw_output, finish_reason=finish_reason)
        self.raw_output = raw_output
        self.finish_reason = finish_reason


class OutputTruncated(OutputInvalid):
    """Generation hit the token limit before the structured answer was complete."""

    code = "output_truncated"
