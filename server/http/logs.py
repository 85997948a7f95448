"""Logging set-up: one JSON object per line, with the request id where there is one.

Access lines carry method, route template, status and latency; request bodies (and so
prompt text) are never logged.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from server.settings import Settings

__all__ = ["JsonFormatter", "configure_logging"]

_FIELDS = ("request_id", "method", "route", "status", "latency_ms")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            if (value := getattr(record, name, None)) is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("wrapserve")
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    root.propagate = False
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.handlers[:] = [handler]
    uvicorn_error.setLevel(logging.INFO)
