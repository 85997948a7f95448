"""The background task that runs batch jobs: resumable, bounded, leased, one commit per result.

On start it waits for the engine, then works through every unfinished batch in the store,
and looks again whenever a batch is created here and every few seconds (a batch created
through another replica, or one whose runner died). It claims requests under a lease
(``BatchStore.claim_items``) and renews it while they run, so runners of several replicas
share a batch and a dead one's requests are taken over when its lease runs out; a
request that has a result keeps it. Up to ``in_flight`` requests run at once, so the
engine sees one large continuous batch. Cancelling stops new requests, aborts the
running ones, and closes the batch with the results it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from typing import Any, TypeVar

from server.batches.dispatch import Dispatcher, LineResponse
from server.batches.jsonl import wrapper_name
from server.batches.store import BatchStore, PendingItem
from server.lifecycle import Lifecycle

__all__ = ["BatchRunner"]

log = logging.getLogger("wrapserve.batches")

T = TypeVar("T")

READY_POLL_S = 0.5
MAX_IDLE_POLL_S = 5.0  # how often an idle runner looks for other replicas' work


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
        lease_s: float = 30.0,
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._in_flight = in_flight
        self._lifecycle = lifecycle
        self._known_wrapper = known_wrapper
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()  # built in the app's lifespan, on its loop
        self._cancels: dict[str, asyncio.Event] = {}
        self.current: str | None = None  # the batch whose requests are running now
        self.lease_s = lease_s
        # Who holds a lease: unique per process, readable in the store by an operator.
        self.runner_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._idle_poll_s = min(MAX_IDLE_POLL_S, lease_s / 3)

    async def _db(self, call: Callable[..., T], *args: Any) -> T:
        """A store call off the event loop: on PostgreSQL each is a network round trip."""
        return await asyncio.to_thread(call, *args)

    # -- called by the routes ------------------------------------------------------------

    def wake(self) -> None:
        """A batch was created: look at the store again. Safe from any thread (the routes
        create batches off the event loop)."""
        self._loop.call_soon_threadsafe(self._wake.set)

    def cancel(self, batch_id: str) -> None:
        """The batch was marked cancelling: stop its running requests now, or, if none run
        here (it is queued, or another replica runs it), close it right away; a runner
        elsewhere stops at its next lease renewal, and its late answers are not recorded."""
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
        with contextlib.suppress(Exception):  # only a log line; the loop below retries errors
            resumed = await self._db(self._store.unfinished_batch_ids)
            if resumed:
                log.info("resuming %d unfinished batch job(s)", len(resumed))
        try:
            while True:
                self._wake.clear()
                try:
                    for batch_id in await self._db(self._store.unfinished_batch_ids):
                        await self._run_batch(batch_id)
                        if not await self._engine_ready():
                            return
                except asyncio.CancelledError:
                    raise
                except Exception:  # the database unreachable, say: nothing is lost, try again
                    log.exception("batch runner: unexpected error; retrying in 5 s")
                    await asyncio.sleep(5)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle_poll_s)
        finally:
            with contextlib.suppress(Exception):  # unreachable: the leases run out instead
                await self._db(self._store.release_leases, self.runner_id)  # others take them now

    async def _run_batch(self, batch_id: str) -> None:
        store, db = self._store, self._db
        status = (await db(store.get_batch, batch_id)).status
        if status == "validating":
            problems = await db(self._validate, batch_id)
            if problems:
                if await db(store.transition, batch_id, ("validating",), "failed"):
                    await db(store.set_status, batch_id, "failed", problems)
                    log.warning("batch %s failed validation: %s", batch_id, problems[0]["message"])
                return
            await db(store.transition, batch_id, ("validating",), "in_progress")
        if (await db(store.get_batch, batch_id)).status == "in_progress":
            self.current = batch_id
            try:
                await self._run_items(batch_id)
            finally:
                self.current = None
                await db(store.release_leases, self.runner_id, batch_id)
            if await db(store.has_pending, batch_id):
                return  # held by another runner, or the engine went away: looked at again later
            await db(store.transition, batch_id, ("in_progress",), "finalizing")
        status = (await db(store.get_batch, batch_id)).status
        if status in ("finalizing", "cancelling"):
            final = "completed" if status == "finalizing" else "cancelled"
            record = await db(store.finalize, batch_id, final)
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
        store, db = self._store, self._db
        owner_key = (await db(store.get_batch, batch_id)).owner_key
        cancelled = self._cancels.setdefault(batch_id, asyncio.Event())
        queue: list[PendingItem] = []  # claimed here, not yet started; next one last

        async def next_item() -> PendingItem | None:
            if not queue:
                claimed = await db(store.claim_items, batch_id, self.runner_id, self._in_flight, self.lease_s)
                queue.extend(reversed(claimed))
            return queue.pop() if queue else None

        async def worker() -> None:
            while not cancelled.is_set() and (item := await next_item()) is not None:
                response = await self._execute(item, owner_key)
                if response is None:  # the engine went away; the item stays pending
                    return
                await db(
                    store.record_result,
                    batch_id,
                    item.custom_id,
                    response.status_code,
                    response.request_id,
                    response.body,
                )

        async def keep_leases() -> None:
            """Renew what this runner holds; stop when the batch stops running (a cancel made
            through another replica, say)."""
            while True:
                await asyncio.sleep(self.lease_s / 3)
                await db(store.renew_leases, self.runner_id, self.lease_s)
                if (await db(store.get_batch, batch_id)).status != "in_progress":
                    cancelled.set()

        async def watch() -> None:
            await cancelled.wait()

        workers = [asyncio.create_task(worker()) for _ in range(self._in_flight)]
        helpers = [asyncio.create_task(watch()), asyncio.create_task(keep_leases())]
        try:
            running: set[asyncio.Task[None]] = set(workers)
            while running:
                done, running = await asyncio.wait(
                    running | set(helpers), return_when=asyncio.FIRST_COMPLETED
                )
                running -= set(helpers)
                for task in done:
                    task.result()  # surface a worker's (or the lease keeper's) unexpected error
                if helpers[0] in done:
                    break
        finally:
            for task in [*workers, *helpers]:
                task.cancel()
            # Every task ends before this returns; none's error may hide the cancellation.
            await asyncio.gather(*workers, *helpers, return_exceptions=True)

    async def _execute(self, item: PendingItem, owner_key: str | None) -> LineResponse | None:
        """The line's response; None if the engine went away (the item stays pending for the restart)."""
        return await self._dispatcher.post_until_answered(item.url, item.body, self._lifecycle, owner_key)
