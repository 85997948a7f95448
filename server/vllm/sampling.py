"""vLLM's per-request settings built from the engine seam's ``Sampling`` and ``Constraint``,
and the text of an answer vLLM was told not to detokenize."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.engine.protocol import Constraint, Sampling

__all__ = ["answer_text", "sampling_params"]

# Prompt tokens an answer decoded whole is read after: how the first answer token decodes can
# depend on what comes before it (SentencePiece's leading space), as in vLLM's own detokenizer.
_DECODE_CONTEXT_TOKENS = 8


def sampling_params(sampling: Sampling, constraint: Constraint | None, delta: bool) -> Any:
    from vllm.sampling_params import RequestOutputKind, SamplingParams, StructuredOutputsParams

    structured = None
    if constraint is not None and constraint.kind == "json":
        structured = StructuredOutputsParams(json=constraint.spec)
    elif constraint is not None:
        structured = StructuredOutputsParams(regex=constraint.spec)
    return SamplingParams(
        n=sampling.n,
        max_tokens=sampling.max_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        stop=list(sampling.stop) or None,
        seed=sampling.seed,
        logprobs=sampling.logprobs,
        repetition_penalty=sampling.repetition_penalty,
        frequency_penalty=sampling.frequency_penalty,
        presence_penalty=sampling.presence_penalty,
        ignore_eos=sampling.ignore_eos,
        structured_outputs=structured,
        output_kind=RequestOutputKind.DELTA if delta else RequestOutputKind.FINAL_ONLY,
        # Text is needed token by token only to stream it, find stop strings or name
        # logprob tokens; otherwise the answer is decoded once, whole (answer_text).
        detokenize=delta or bool(sampling.stop) or sampling.logprobs is not None,
        skip_clone=True,  # built for this one request: vLLM need not deep-copy it
    )


def answer_text(tokenizer: Any, prompt_token_ids: Sequence[int], token_ids: Sequence[int]) -> str:
    """The answer's text, decoded once after the last few prompt tokens as vLLM's
    incremental detokenizer reads it (special tokens skipped)."""
    decoder = getattr(tokenizer, "_tokenizer", None)  # the Rust tokenizer vLLM's detokenizer steps
    if decoder is None:
        return str(tokenizer.decode(list(token_ids), skip_special_tokens=True))
    context = list(prompt_token_ids[-_DECODE_CONTEXT_TOKENS:])
    before = decoder.decode(context, skip_special_tokens=True)
    whole = decoder.decode([*context, *token_ids], skip_special_tokens=True)
    if whole.startswith(before):
        return str(whole[len(before) :])
    return str(decoder.decode(list(token_ids), skip_special_tokens=True))
