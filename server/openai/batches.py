"""``/v1/batches`` in OpenAI's shape: create, retrieve, list, cancel."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from server.batches.jobs import BatchJobs, get_batches
from server.http.middleware.auth import Caller
from server.limits import check_unicode

__all__ = ["router"]

router = APIRouter(prefix="/v1/batches", tags=["batches"])

Jobs = Annotated[BatchJobs, Depends(get_batches)]


class CreateBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_file_id: str = Field(min_length=1)
    endpoint: str = Field(
        min_length=1, description="/v1/chat/completions, /v1/completions or a wrapper invoke url"
    )
    completion_window: str = "24h"
    metadata: dict[str, str] | None = Field(default=None, max_length=16)


@router.post("")
async def create_batch(body: CreateBatch, jobs: Jobs, caller: Caller) -> dict[str, Any]:
    for key, value in (body.metadata or {}).items():
        check_unicode(key + value, f"metadata.{key.encode('utf-8', 'backslashreplace').decode()}")
    check_unicode(body.input_file_id, "input_file_id")
    check_unicode(body.endpoint, "endpoint")
    record = await asyncio.to_thread(  # reads and parses the whole input file
        jobs.create, body.input_file_id, body.endpoint, body.completion_window, body.metadata, caller
    )
    return record.as_openai()


@router.get("")
def list_batches(
    jobs: Jobs, caller: Caller, after: str | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> dict[str, Any]:
    records, has_more = jobs.store.list_batches(after, limit, caller)
    data = [record.as_openai() for record in records]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


@router.get("/{batch_id}")
def get_batch(batch_id: str, jobs: Jobs, caller: Caller) -> dict[str, Any]:
    return jobs.store.get_batch(batch_id, caller).as_openai()


@router.post("/{batch_id}/cancel")
async def cancel_batch(batch_id: str, jobs: Jobs, caller: Caller) -> dict[str, Any]:
    return jobs.cancel(batch_id, caller).as_openai()
