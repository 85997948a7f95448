"""Batch input files: OpenAI's JSONL line format, parsed and checked before anything runs.

One line is ``{"custom_id": str, "method": "POST", "url": str, "body": {...}}``. A file
is accepted whole or rejected whole, with a 400 that names the first bad line, so a
batch never starts on input that would only half run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wrappers.errors import BadRequest

__all__ = [
    "CHAT_COMPLETIONS",
    "COMPLETIONS",
    "BatchInputInvalid",
    "BatchLine",
    "is_allowed_url",
    "parse_batch_file",
    "result_line",
    "same_endpoint",
    "wrapper_name",
]

CHAT_COMPLETIONS = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
_WRAPPER_URL = re.compile(r"^/v1/wrappers/([A-Za-z0-9_.\-]+)/invoke$")
MAX_CUSTOM_ID = 512


class BatchInputInvalid(BadRequest):
    code = "invalid_batch_input"


@dataclass(frozen=True, slots=True)
class BatchLine:
    line_no: int  # 1-based, as editors count
    custom_id: str
    method: str
    url: str
    body: dict[str, Any]

    def request_json(self) -> str:
        return json.dumps({"method": self.method, "url": self.url, "body": self.body}, separators=(",", ":"))


def wrapper_name(url: str) -> str | None:
    """The wrapper a ``/v1/wrappers/{name}/invoke`` url targets, else None."""
    match = _WRAPPER_URL.match(url)
    return match.group(1) if match else None


def is_allowed_url(url: str) -> bool:
    return url in (CHAT_COMPLETIONS, COMPLETIONS) or wrapper_name(url) is not None


def same_endpoint(endpoint: str, url: str) -> bool:
    """A line fits a batch's endpoint when it is that url, or both are wrapper invocations."""
    if url == endpoint:
        return True
    return wrapper_name(endpoint) is not None and wrapper_name(url) is not None


def _fail(line_no: int, message: str) -> BatchInputInvalid:
    return BatchInputInvalid(f"line {line_no}: {message}", param=f"line {line_no}", line=line_no)


def _parse_line(line_no: int, text: str, known_wrapper: Callable[[str], bool] | None) -> BatchLine:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise _fail(line_no, f"not valid JSON ({error.msg} at column {error.colno})") from None
    except RecursionError:
        raise _fail(line_no, "JSON nested too deeply") from None
    if not isinstance(raw, dict):
        raise _fail(line_no, "must be a JSON object with custom_id, method, url and body")
    missing = [key for key in ("custom_id", "method", "url", "body") if key not in raw]
    if missing:
        raise _fail(line_no, f"missing field(s) {', '.join(missing)}")
    extra = sorted(set(raw) - {"custom_id", "method", "url", "body"})
    if extra:
        raise _fail(line_no, f"unknown field(s) {', '.join(extra)}")
    custom_id, method, url, body = raw["custom_id"], raw["method"], raw["url"], raw["body"]
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > MAX_CUSTOM_ID:
        raise _fail(line_no, f"custom_id must be a non-empty string of at most {MAX_CUSTOM_ID} characters")
    try:
        custom_id.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(line_no, "custom_id holds a lone surrogate (invalid Unicode)") from None
    if method != "POST":
        raise _fail(line_no, f"method must be POST, not {method!r}")
    if not isinstance(url, str) or not is_allowed_url(url):
        raise _fail(
            line_no,
            f"url {url!r} is not a batch endpoint; use {CHAT_COMPLETIONS}, {COMPLETIONS} "
            "or /v1/wrappers/{name}/invoke",
        )
    name = wrapper_name(url)
    if name is not None and known_wrapper is not None and not known_wrapper(name):
        raise _fail(line_no, f"unknown wrapper {name!r} in url {url}")
    if not isinstance(body, dict):
        raise _fail(line_no, "body must be a JSON object")
    if body.get("stream"):
        raise _fail(line_no, "body.stream is not supported in batches")
    return BatchLine(line_no, custom_id, method, url, body)


def parse_batch_file(
    content: bytes,
    *,
    max_lines: int,
    max_line_bytes: int | None = None,
    endpoint: str | None = None,
    known_wrapper: Callable[[str], bool] | None = None,
) -> list[BatchLine]:
    """Every line of a batch input file, or ``BatchInputInvalid`` naming the first bad one.

    Blank lines are skipped. ``endpoint``, when given, is the batch's endpoint that every
    line must fit; ``known_wrapper`` says whether a wrapper name exists; ``max_line_bytes``
    bounds each line as the body limit bounds a request (a line carries one request's body).
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BatchInputInvalid(f"the file is not UTF-8 (byte {error.start})") from None
    lines: list[BatchLine] = []
    seen: dict[str, int] = {}
    for line_no, raw_line in enumerate(text.splitlines(), start=1):
        if not raw_line.strip():
            continue
        if len(lines) >= max_lines:
            raise BatchInputInvalid(
                f"the file has more than {max_lines} requests; split it into several batches"
            )
        if max_line_bytes is not None and len(raw_line.encode("utf-8", "surrogatepass")) > max_line_bytes:
            raise _fail(line_no, f"the line is larger than {max_line_bytes} bytes, the request body limit")
        line = _parse_line(line_no, raw_line, known_wrapper)
        if line.custom_id in seen:
            raise _fail(
                line_no, f"duplicate custom_id {line.custom_id!r} (first on line {seen[line.custom_id]})"
            )
        if endpoint is not None and not same_endpoint(endpoint, line.url):
            raise _fail(line_no, f"url {line.url} does not match the batch endpoint {endpoint}")
        seen[line.custom_id] = line_no
        lines.append(line)
    if not lines:
        raise BatchInputInvalid("the file has no requests")
    return lines


def result_line(result_id: str, custom_id: str, status_code: int, request_id: str, body: Any) -> bytes:
    """One line of a batch output (or error) file, in OpenAI's format, newline included."""
    error = None
    if status_code >= 300:
        detail = body.get("error") if isinstance(body, dict) else None
        detail = detail if isinstance(detail, dict) else {}
        error = {
            "code": detail.get("code") or "request_failed",
            "message": detail.get("message") or str(body),
        }
    line = {
        "id": result_id,
        "custom_id": custom_id,
        "response": {"status_code": status_code, "request_id": request_id, "body": body},
        "error": error,
    }
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
