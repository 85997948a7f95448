"""Backpressure: a bound on requests and tokens queued for the engine.

Every request that is about to give the engine work is admitted first, with its
estimated token cost (prompt + max_tokens). Beyond ``Limits.max_queued_requests`` or
``Limits.max_queued_tokens`` it is refused at once with ``Overloaded`` (429 +
Retry-After) instead of joining an unbounded queue; every admitted request is released
in a ``finally``, whatever happens to it. Work admitted as a group (a native batch)
admits once: nested admissions in the same task tree pass straight through.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from contextvars import ContextVar

from server.limits import Limits
from wrappers.errors import Overloaded

__all__ = ["Admission"]

_ids = itertools.count()


class Admission:
    def __init__(self, limits: Limits, retry_after_s: int = 1) -> None:
        self.max_requests = limits.max_queued_requests
        self.max_tokens = limits.max_queued_tokens
        self.retry_after_s = retry_after_s
        self.requests = 0
        self.tokens = 0
        self.rejected = 0
        self._inside: ContextVar[bool] = ContextVar(f"wrapserve-admitted-{next(_ids)}", default=False)

    def _refuse(self, requests: int, tokens: int) -> str | None:
        # Something always gets through on an idle server, however large it is.
        if self.requests and self.requests + requests > self.max_requests:
            return f"{self.requests} requests are queued (limit {self.max_requests})"
        if self.tokens and self.tokens + tokens > self.max_tokens:
            return f"{self.tokens} tokens are queued (limit {self.max_tokens})"
        return None

    def _take(self, requests: int, tokens: int) -> None:
        if (reason := self._refuse(requests, tokens)) is not None:
            self.rejected += 1
            raise Overloaded(f"the server is busy: {reason}; retry shortly", retry_after_s=self.retry_after_s)
        self.requests += requests
        self.tokens += tokens

    def _give_back(self, requests: int, tokens: int) -> None:
        self.requests -= requests
        self.tokens -= tokens

    @contextlib.asynccontextmanager
    async def admit(self, tokens: int) -> AsyncIterator[None]:
        """Hold a place for one request until the block exits; ``Overloaded`` if full."""
        if self._inside.get():  # part of a group that was admitted as a whole
            yield
            return
        self._take(1, tokens)
        try:
            yield
        finally:
            self._give_back(1, tokens)

    @contextlib.asynccontextmanager
    async def admit_group(self, tokens: int, requests: int) -> AsyncIterator[None]:
        """Admit many requests at once; admissions inside the block (and the tasks it
        starts) pass straight through."""
        if self._inside.get():
            yield
            return
        self._take(requests, tokens)
        marker = self._inside.set(True)
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):  # exited from another context
                self._inside.reset(marker)
            self._give_back(requests, tokens)
