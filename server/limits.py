"""Request bounds shared by every route: one place, so no route forgets one."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from wrappers.errors import BadRequest

__all__ = ["ContextOverflow", "Limits", "check_engine_int", "check_prompt_fits", "check_unicode"]

# What the engine's serializer holds (a signed 64-bit integer): anything outside is a 400
# here, not an OverflowError inside vLLM with a request left behind.
INT64 = (-(2**63), 2**63 - 1)


class Limits(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    max_tokens: int = Field(default=4096, gt=0)
    # max_tokens of an OpenAI-route request that sets none: a small model that loops would
    # otherwise generate to the end of the context (minutes per call on a CPU).
    default_max_tokens: int = Field(default=1024, gt=0)
    max_n: int = Field(default=8, gt=0)
    max_stop_sequences: int = Field(default=8, ge=0)
    # Messages in one chat request: each adds template tokens the content does not show, and
    # hundreds of thousands of empty ones would hold the tokenizer for minutes.
    max_messages: int = Field(default=2048, gt=0)
    max_batch_items: int = Field(default=1000, gt=0)
    max_queued_requests: int = Field(default=256, gt=0)
    max_queued_tokens: int = Field(default=2_000_000, gt=0)
    # Batch jobs: upload size, lines per file, and requests one batch keeps in flight.
    max_batch_file_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    max_batch_lines: int = Field(default=50_000, gt=0)
    max_batch_in_flight: int = Field(default=64, gt=0)
    # Answers that fail their schema's validation are generated again this many times at
    # most (with another seed) before the call answers 502 (server/structured/checked.py).
    max_schema_resamples: int = Field(default=2, ge=0, le=8)
    # Connections: a request's headers must be complete this long after the connection
    # opened (or the previous response ended); a body may pause this long between chunks
    # (408 after); beyond max_connections open connections or requests, new ones get 503.
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=1024, gt=0)
    # Stored responses (POST /v1/responses with store): how many, and for how long.
    max_stored_responses: int = Field(default=10_000, ge=0)
    stored_response_ttl_s: int = Field(default=30 * 24 * 3600, gt=0)


class ContextOverflow(BadRequest):
    code = "context_length_exceeded"


def check_engine_int(value: int | None, param: str) -> None:
    if value is not None and not INT64[0] <= value <= INT64[1]:
        raise BadRequest(f"{param} must be a signed 64-bit integer, got {value}", param=param)


def check_unicode(text: str, param: str) -> None:
    """A lone surrogate ("\\ud800", legal in JSON text, not in Unicode) is a 400 naming the
    field, before any tokenizer sees it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{param} holds a lone surrogate (invalid Unicode)", param=param) from None


def check_prompt_fits(prompt_tokens: int, max_tokens: int, max_model_len: int) -> None:
    if prompt_tokens + max_tokens > max_model_len:
        raise ContextOverflow(
            f"the prompt has {prompt_tokens} tokens and max_tokens is {max_tokens}, together "
            f"{prompt_tokens + max_tokens}; the model's context length is {max_model_len}",
            param="messages",
        )
