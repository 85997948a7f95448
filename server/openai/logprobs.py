"""The engine's ``TokenLogprob`` in OpenAI's two shapes (chat's and the legacy completions')."""

from __future__ import annotations

import math
from collections.abc import Sequence

from server.engine.protocol import TokenLogprob
from server.openai.protocol import ChoiceLogprobs, CompletionLogprobs, TokenLogprobOut, TopLogprob

__all__ = ["chat_logprobs_out", "completion_logprobs_out"]

# JSON has no -inf; OpenAI reports impossible tokens with this value.
_FLOOR = -9999.0


def _finite(value: float) -> float:
    return value if math.isfinite(value) else _FLOOR


def chat_logprobs_out(entries: Sequence[TokenLogprob] | None, top: int) -> ChoiceLogprobs | None:
    if entries is None:
        return None
    return ChoiceLogprobs(
        content=[
            TokenLogprobOut(
                token=entry.token,
                logprob=_finite(entry.logprob),
                bytes=list(entry.token.encode()),
                top_logprobs=[
                    TopLogprob(token=token, logprob=_finite(logprob), bytes=list(token.encode()))
                    for token, logprob in entry.top[:top]
                ],
            )
            for entry in entries
        ]
    )


def completion_logprobs_out(
    entries: Sequence[TokenLogprob] | None, top: int, offset: int = 0
) -> CompletionLogprobs | None:
    """The legacy shape; ``offset`` is where this text starts (for streamed pieces)."""
    if entries is None:
        return None
    result = CompletionLogprobs()
    for entry in entries:
        result.tokens.append(entry.token)
        result.token_logprobs.append(_finite(entry.logprob))
        result.top_logprobs.append({token: _finite(logprob) for token, logprob in entry.top[:top]})
        result.text_offset.append(offset)
        offset += len(entry.token)
    return result
