"""The background task that runs batch jobs: resumable, bounded, one commit per result.

On start it waits for the engine, then picks up every unfinished batch in the store,
so a server killed mid-job simply carries on after a restart: requests that had a
result keep it, the rest run. Up to ``in_flight`` requests of a batch run at once, so
the engine sees one large continuous batch. Cancelling stops new requests, aborts
the running ones, and closes the batch with the results it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from server.batches.dispatch import Dispatcher, LineResponse
from server.batches.jsonl import wrapper_name
from server.batches.store import BatchStore, PendingItem
from server.lifecycle import Lifecycle

__all__ = ["BatchRunner"]

log = logging.getLogger("wrapserve.batches")

READY_POLL_S = 0.5


class BatchRunner:
    """Runs the store's unfinished batches, one after the other, each with bounded concurrency."""

    def __init__(
        self,
        store: BatchStore,
        dispatcher: Dispatcher,
        *,
        in_flight: int,
        lifecycle: Lifecycle,
        known_wrapper: Callable[[str], bool],
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._in_flight = in_flight
        self._lifecycle = lifecycle
        self._known_wrapper = known_wrapper
        self._wake = asyncio.Event()
        self._cancels: dict[str, asyncio.Event] = {}
        self.current: str | None = None  # the batch whose requests are running now

    # -- called by the routes ------------------------------------------------------------

    def wake(self) -> None:
        """A batch was created: look at the store again."""
        self._wake.set()

    def cancel(self, batch_id: str) -> None:
        """The batch was marked cancelling: stop its running requests now, or, if none are
        running (it is queued behind another batch), close it right away."""
        if batch_id != self.current:
            self._store.finalize(batch_id, "cancelled")
            return
        self._cancels.setdefault(batch_id, asyncio.Event()).set()
        self._wake.set()

    # -- the loop ------------------------------------------------------------------------

    async def _engine_ready(self) -> bool:
        return await self._lifecycle.wait_ready(READY_POLL_S)

    async def run(self) -> None:
        """Run until cancelled (at shutdown); every result is already committed when it stops."""
        if not await self._engine_ready():
            return
        resumed = self._store.unfinished_batch_ids()
        if resumed:
            log.info("resuming %d unfinished batch job(s)", len(resumed))
        while True:
            self._wake.clear()
            batch_ids = self._store.unfinished_batch_ids()
            for batch_id in batch_ids:
                try:
                    await self._run_batch(batch_id)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("batch %s: unexpected error; retrying in 5 s", batch_id)
                    await asyncio.sleep(5)
                if not await self._engine_ready():
                    return
            if not batch_ids:
                await self._wake.wait()

    async def _run_batch(self, batch_id: str) -> None:
        store = self._store
        status = store.get_batch(batch_id).status
        if status == "validating":
            problems = self._validate(batch_id)
            if problems:
                store.transition(batch_id, ("validating",), "failed")
                store.set_status(batch_id, "failed", errors=problems)
                log.warning("batch %s failed validation: %s", batch_id, problems[0]["message"])
                return
            store.transition(batch_id, ("validating",), "in_progress")
        if store.get_batch(batch_id).status == "in_progress":
            self.current = batch_id
            try:
                await self._run_items(batch_id)
            finally:
                self.current = None
            if store.pending_items(batch_id):
                return  # the engine went away mid-batch; the rest runs after the restart
            store.transition(batch_id, ("in_progress",), "finalizing")
        status = store.get_batch(batch_id).status
        if status in ("finalizing", "cancelling"):
            record = store.finalize(batch_id, "completed" if status == "finalizing" else "cancelled")
            self._cancels.pop(batch_id, None)
            counts = record.counts
            log.info(
                "batch %s %s: %d succeeded, %d failed of %d",
                batch_id,
                record.status,
                counts.completed,
                counts.failed,
                counts.total,
            )

    def _validate(self, batch_id: str) -> list[dict[str, Any]]:
        """Checks that can change between creation and start (e.g. a wrapper removed meanwhile)."""
        problems = []
        for item in self._store.pending_items(batch_id):
            name = wrapper_name(item.url)
            if name is not None and not self._known_wrapper(name):
                problems.append(
                    {
                        "code": "unknown_wrapper",
                        "message": f"unknown wrapper {name!r}",
                        "param": "url",
                        "line": item.line_no,
                    }
                )
        return problems

    async def _run_items(self, batch_id: str) -> None:
        queue = list(reversed(self._store.pending_items(batch_id)))
        owner_key = self._store.get_batch(batch_id).owner_key
        cancelled = self._cancels.setdefault(batch_id, asyncio.Event())

        async def worker() -> None:
            while queue and not cancelled.is_set():
                item = queue.pop()
                response = await self._execute(item, owner_key)
                if response is None:  # the engine went away; the item stays pending
                    return
                self._store.record_result(
                    batch_id, item.custom_id, response.status_code, response.request_id, response.body
                )

        async def watch() -> None:
            await cancelled.wait()

        workers = [asyncio.create_task(worker()) for _ in range(min(self._in_flight, len(queue)))]
        watcher = asyncio.create_task(watch())
        try:
            running: set[asyncio.Task[None]] = set(workers)
            while running:
                done, running = await asyncio.wait(running | {watcher}, return_when=asyncio.FIRST_COMPLETED)
                running.discard(watcher)
                for task in done:
                    if task is not watcher:
                        task.result()  # surface a worker's unexpected error
                if watcher in done:
                    break
        finally:
            for task in [*workers, watcher]:
                task.cancel()
            for task in [*workers, watcher]:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _execute(self, item: PendingItem, owner_key: str | None) -> LineResponse | None:
        """The line's response; None if the engine went away (the item stays pending for the restart)."""
        return await self._dispatcher.post_until_answered(item.url, item.body, self._lifecycle, owner_key)
