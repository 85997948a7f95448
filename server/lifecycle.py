"""The server's phase, changed only through named steps (never written from outside).

starting -> warming -> ready -> draining -> stopped, or failed from starting/warming.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

__all__ = ["Lifecycle", "Phase"]

Phase = Literal["starting", "warming", "ready", "draining", "failed", "stopped"]


class Lifecycle:
    def __init__(self) -> None:
        self._phase: Phase = "starting"
        self.failure: str | None = None
        self._on_fatal: Callable[[], None] = lambda: None

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def is_ready(self) -> bool:
        return self._phase == "ready"

    async def wait_ready(self, poll_s: float = 0.5) -> bool:
        """Wait until the server serves; False once it never will again (failed, draining,
        stopped)."""
        while (phase := self._phase) != "ready":
            if phase in ("failed", "stopped", "draining"):
                return False
            await asyncio.sleep(poll_s)
        return True

    def when_fatal(self, callback: Callable[[], None]) -> None:
        """Called once the server cannot serve at all (the CLI stops uvicorn then)."""
        self._on_fatal = callback

    def warming(self) -> None:
        self._phase = "warming"

    def ready(self) -> None:
        self._phase = "ready"

    def fail(self, reason: str) -> None:
        self._phase = "failed"
        self.failure = reason
        self._on_fatal()

    def drain(self) -> bool:
        """Stop taking new work; True if the server was ready until now."""
        if self._phase != "ready":
            return False
        self._phase = "draining"
        return True

    def stop(self) -> None:
        if self._phase != "failed":
            self._phase = "stopped"
