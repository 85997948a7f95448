"""``wrapserve batch run IN.jsonl OUT.jsonl``: a batch file through an in-process engine.

The same app the server runs is built in this process (engine, wrappers, routes) and
every line is sent to it in-process, many at once, so vLLM batches them. Each result
is appended to OUT.jsonl (flushed) the moment it arrives; run the command again after
an interruption and it skips the custom_ids OUT.jsonl already has.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from server.batches.dispatch import Dispatcher
from server.batches.jsonl import BatchLine, parse_batch_file, result_line
from server.state import ServerState
from wrappers.errors import BadRequest, ConfigurationError

__all__ = ["OfflineSummary", "finished_ids", "read_batch_file", "run_offline"]

OFFLINE_MAX_LINES = 10_000_000


@dataclass(frozen=True, slots=True)
class OfflineSummary:
    total: int
    skipped: int  # already in OUT from an earlier run
    succeeded: int
    failed: int
    unanswered: int = 0  # the engine went away before they ran: run the command again


def read_batch_file(path: Path, known_wrapper: Callable[[str], bool]) -> list[BatchLine]:
    try:
        content = path.read_bytes()
    except OSError as error:
        raise BadRequest(f"cannot read {path}: {error.strerror}") from None
    return parse_batch_file(content, max_lines=OFFLINE_MAX_LINES, known_wrapper=known_wrapper)


def finished_ids(out_path: Path, wanted: set[str]) -> set[str]:
    """custom_ids already answered in ``out_path``; a torn last line is cut off."""
    if not out_path.exists():
        return set()
    data = out_path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with out_path.open("r+b") as handle:
            handle.truncate(len(complete))
    done: set[str] = set()
    for number, raw in enumerate(complete.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            custom_id = json.loads(raw)["custom_id"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise BadRequest(f"{out_path} line {number} is not a batch result; pass --overwrite") from None
        if custom_id not in wanted:
            raise BadRequest(
                f"{out_path} has custom_id {custom_id!r}, which the input does not; pass --overwrite"
            )
        done.add(custom_id)
    return done


async def run_offline(
    app: FastAPI,
    lines: list[BatchLine],
    out_path: Path,
    *,
    concurrency: int,
    on_ready: Callable[[int], None],
    on_result: Callable[[bool], None],
) -> OfflineSummary:
    """Run ``lines`` not yet in ``out_path`` through ``app``; ``on_result(ok)`` after each one."""
    state: ServerState = app.state.wrapserve
    done = finished_ids(out_path, {line.custom_id for line in lines})
    todo = [line for line in lines if line.custom_id not in done]
    counts = {"ok": 0, "failed": 0, "unanswered": 0}
    async with app.router.lifespan_context(app):
        if not await state.lifecycle.wait_ready():
            raise ConfigurationError(state.failure or "the engine failed to start")
        on_ready(len(todo))
        dispatcher = Dispatcher(app)
        queue = list(reversed(todo))
        with out_path.open("ab") as out:

            async def worker() -> None:
                while queue:
                    line = queue.pop()
                    response = await dispatcher.post_until_answered(line.url, line.body, state.lifecycle)
                    if response is None:  # the engine went away: left for the next run
                        counts["unanswered"] += 1
                        continue
                    out.write(
                        result_line(
                            f"batch_req_{secrets.token_hex(12)}",
                            line.custom_id,
                            response.status_code,
                            response.request_id,
                            response.body,
                        )
                    )
                    out.flush()
                    ok = response.status_code < 300
                    counts["ok" if ok else "failed"] += 1
                    on_result(ok)

            try:
                await asyncio.gather(*(worker() for _ in range(min(concurrency, len(todo)))))
            finally:
                out.flush()
                os.fsync(out.fileno())
                await dispatcher.aclose()
    return OfflineSummary(len(lines), len(done), counts["ok"], counts["failed"], counts["unanswered"])
