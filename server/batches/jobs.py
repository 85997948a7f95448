"""Batch jobs as the routes see them: upload, create, cancel, and the runner's lifecycle.

One ``BatchJobs`` per app (``app.state.batches``), built by ``create_app`` from the
settings; it owns the store and the background runner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fastapi import FastAPI, Request

from server.batches.dispatch import Dispatcher
from server.batches.jsonl import BatchInputInvalid, is_allowed_url, parse_batch_file
from server.batches.runner import BatchRunner
from server.batches.store import BatchRecord, BatchStore, FileRecord
from server.lifecycle import Lifecycle
from server.limits import Limits
from wrappers.errors import BadRequest, NotFound

__all__ = ["BatchJobs", "FileTooLarge", "get_batches"]

log = logging.getLogger("wrapserve.batches")

COMPLETION_WINDOWS = ("24h",)


class FileTooLarge(BadRequest):
    status = 413
    code = "file_too_large"


class BatchJobs:
    """The store of files and batches, and the task that runs them."""

    def __init__(
        self,
        store: BatchStore,
        limits: Limits,
        known_wrapper: Callable[[str], bool],
        lease_s: float = 30.0,
    ) -> None:
        self.store = store
        self.limits = limits
        self.lease_s = lease_s
        self._known_wrapper = known_wrapper
        self.run_jobs = True  # False in `wrapserve batch run`: that process runs only its own file
        self._runner: BatchRunner | None = None
        self._dispatcher: Dispatcher | None = None
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, app: FastAPI, lifecycle: Lifecycle) -> None:
        """Start the runner; it waits for the engine before running anything."""
        if not self.run_jobs:
            return
        self._dispatcher = Dispatcher(app)
        self._runner = BatchRunner(
            self.store,
            self._dispatcher,
            in_flight=self.limits.max_batch_in_flight,
            lifecycle=lifecycle,
            known_wrapper=self._known_wrapper,
            lease_s=self.lease_s,
        )
        self._task = asyncio.create_task(self._runner.run(), name="batch-runner")

    async def stop(self) -> None:
        """Stop the runner. Nothing to save: every finished request is already committed."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:  # the runner died of an error: shutting down goes on regardless
                log.exception("the batch runner had stopped with an error")
            self._task = None
        if self._dispatcher is not None:
            await self._dispatcher.aclose()
            self._dispatcher = None
        self.store.close()

    # -- requests ------------------------------------------------------------------------

    def check_upload_size(self, declared_bytes: int | None) -> None:
        if declared_bytes is not None and declared_bytes > self.limits.max_batch_file_bytes + 64 * 1024:
            raise FileTooLarge(
                f"the upload is larger than {self.limits.max_batch_file_bytes} bytes", param="file"
            )

    def upload(self, filename: str, purpose: str, content: bytes, owner_key: str | None = None) -> FileRecord:
        """Store a batch input file after checking every line; a bad file is rejected whole.
        ``owner_key``: the uploader's API key digest; only that key sees the file."""
        if purpose != "batch":
            raise BadRequest(f"purpose {purpose!r} is not supported; use 'batch'", param="purpose")
        if len(content) > self.limits.max_batch_file_bytes:
            raise FileTooLarge(
                f"the file has {len(content)} bytes; the limit is {self.limits.max_batch_file_bytes}",
                param="file",
            )
        parse_batch_file(
            content,
            max_lines=self.limits.max_batch_lines,
            max_line_bytes=self.limits.max_body_bytes,
            known_wrapper=self._known_wrapper,
        )
        return self.store.create_file(filename or "upload.jsonl", purpose, content, owner_key)

    def create(
        self,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, str] | None,
        owner_key: str | None = None,
    ) -> BatchRecord:
        """Check the input file against ``endpoint`` and queue the batch; ``owner_key`` is the
        creator's API key digest: the input file must be its own, only it sees the batch, and
        the batch's lines run with its rights."""
        if not is_allowed_url(endpoint):
            raise BadRequest(
                f"endpoint {endpoint!r} is not supported; use /v1/chat/completions, /v1/completions "
                "or /v1/wrappers/{name}/invoke",
                param="endpoint",
            )
        if completion_window not in COMPLETION_WINDOWS:
            raise BadRequest(
                f"completion_window must be one of {', '.join(COMPLETION_WINDOWS)}", param="completion_window"
            )
        try:
            file = self.store.get_file(input_file_id, owner_key)
        except NotFound:
            raise BadRequest(f"no file {input_file_id!r}", param="input_file_id") from None
        if file.purpose != "batch":
            raise BadRequest(
                f"file {input_file_id} has purpose {file.purpose!r}, not 'batch'", param="input_file_id"
            )
        try:
            lines = parse_batch_file(
                self.store.file_content(input_file_id, owner_key),
                max_lines=self.limits.max_batch_lines,
                max_line_bytes=self.limits.max_body_bytes,
                endpoint=endpoint,
                known_wrapper=self._known_wrapper,
            )
        except BatchInputInvalid as error:
            raise BatchInputInvalid(
                f"input file {input_file_id}: {error.message}", param=error.param, **error.details
            ) from None
        record = self.store.create_batch(
            endpoint, input_file_id, completion_window, metadata, lines, owner_key
        )
        if self._runner is not None:
            self._runner.wake()
        return record

    def cancel(self, batch_id: str, viewer: str | None = None) -> BatchRecord:
        record = self.store.request_cancel(batch_id, viewer)
        if self._runner is not None and record.status == "cancelling":
            self._runner.cancel(batch_id)
            record = self.store.get_batch(batch_id)
        return record


async def get_batches(request: Request) -> BatchJobs:
    jobs: BatchJobs = request.app.state.batches
    return jobs
