"""``/v1/files`` in OpenAI's shape: upload a batch input (multipart), read it back, list."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import Response

from server.batches.jobs import BatchJobs, FileTooLarge, get_batches
from server.http.middleware.auth import Caller

__all__ = ["router"]

router = APIRouter(prefix="/v1/files", tags=["batches"])

Jobs = Annotated[BatchJobs, Depends(get_batches)]
CHUNK = 1024 * 1024


async def _read_bounded(upload: UploadFile, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise FileTooLarge(f"the file is larger than {limit} bytes", param="file")
        chunks.append(chunk)
    return b"".join(chunks)


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


@router.post("")
async def upload_file(
    request: Request, jobs: Jobs, caller: Caller, file: UploadFile, purpose: Annotated[str, Form()]
) -> dict[str, Any]:
    jobs.check_upload_size(_declared_length(request))
    content = await _read_bounded(file, jobs.limits.max_batch_file_bytes)
    record = await asyncio.to_thread(jobs.upload, file.filename or "", purpose, content, caller)
    return record.as_openai()


@router.get("")
def list_files(jobs: Jobs, caller: Caller, purpose: str | None = None) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [f.as_openai() for f in jobs.store.list_files(purpose, caller)],
        "has_more": False,
    }


@router.get("/{file_id}")
def get_file(file_id: str, jobs: Jobs, caller: Caller) -> dict[str, Any]:
    return jobs.store.get_file(file_id, caller).as_openai()


@router.delete("/{file_id}")
def delete_file(file_id: str, jobs: Jobs, caller: Caller) -> dict[str, Any]:
    jobs.store.delete_file(file_id, caller)
    return {"id": file_id, "object": "file", "deleted": True}


@router.get("/{file_id}/content")
def file_content(file_id: str, jobs: Jobs, caller: Caller) -> Response:
    return Response(jobs.store.file_content(file_id, caller), media_type="application/jsonl")
