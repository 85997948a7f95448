"""Keep the console for Wrapserve's own lines; send vLLM's output to an engine log.

vLLM's worker processes inherit file descriptors 1 and 2 and print their logs and
tracebacks there. Pointing those descriptors at a file (before the engine starts)
keeps the console readable and lets a failed start-up be summed up in one line: the
root cause is read back from the log.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

__all__ = ["divert_engine_output", "engine_failure_cause"]

_ERROR_LINE = re.compile(r"\b(?:[A-Z]\w*(?:Error|Exception)): (.+)$")


def divert_engine_output(path: Path) -> int:
    """Redirect fds 1 and 2 to ``path``; ``sys.stderr`` stays on the console.

    Returns the log's size before this run, to read this run's lines back later.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    console_fd = os.dup(2)
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    offset = os.fstat(log_fd).st_size
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.stderr = open(console_fd, "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    return offset


def engine_failure_cause(path: Path, offset: int = 0) -> str | None:
    """The last ``SomeError: message`` line vLLM wrote since ``offset``, if any."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        match = _ERROR_LINE.search(line)
        if match and "See root cause above" not in line and "see stack trace" not in line.lower():
            return match.group(1).strip()
    for line in reversed(lines):  # fall back to the wrapper message that points "above"
        if match := _ERROR_LINE.search(line):
            return match.group(1).strip()
    return None
