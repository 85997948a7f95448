"""Grammar checks done once per grammar instead of once per request, installed as a vLLM
plugin (entry point group ``vllm.general_plugins`` in pyproject.toml).

For every request with a grammar, vLLM's input processor (in the API process, on the event
loop) checks the grammar with llguidance before the request reaches the engine:
``validate_guidance_grammar`` serializes it and compiles it with llguidance again, though a
wrapper sends the same grammar call after call (and Wrapserve compiled and vetted it already;
the engine core compiles it once more for decoding, which this leaves alone). The plugin remembers the grammars that passed, by a digest of their text
and the tokenizer they passed with, in a bounded LRU; a grammar seen before skips the check,
anything else (new, failed before, not text) gets vLLM's own. What it is worth:
benchmarks/RESULTS.md, "API-process CPU per call".
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["CAPACITY", "install", "remembering"]

CAPACITY = 1024  # grammars remembered per process (digests: 1024 x ~100 bytes)

log = logging.getLogger("vllm.plugins.wrapserve_validated_grammars")

Validate = Callable[..., None]


def remembering(original: Validate, capacity: int = CAPACITY) -> Validate:
    """``validate_guidance_grammar`` that skips grammars it has seen pass (LRU of ``capacity``)."""
    passed: OrderedDict[tuple[str, bytes, int], None] = OrderedDict()

    @functools.wraps(original)  # __wrapped__: vLLM's own function, for tests and debugging
    def validate_guidance_grammar(sampling_params: Any, tokenizer: Any = None) -> None:
        key = _key(sampling_params, tokenizer)
        if key is not None and key in passed:
            try:
                passed.move_to_end(key)
                return
            except KeyError:  # evicted meanwhile by a call on another thread: check it again
                pass
        original(sampling_params, tokenizer=tokenizer)  # raises on a bad grammar: not remembered
        if key is not None:
            passed[key] = None
            while len(passed) > capacity:
                try:
                    passed.popitem(last=False)
                except KeyError:
                    break

    validate_guidance_grammar._wrapserve_validated_grammars = True  # type: ignore[attr-defined]
    validate_guidance_grammar.remembered = passed  # type: ignore[attr-defined]
    return validate_guidance_grammar


def _key(sampling_params: Any, tokenizer: Any) -> tuple[str, bytes, int] | None:
    from vllm.v1.structured_output.request import get_structured_output_key

    structured = getattr(sampling_params, "structured_outputs", None)
    if structured is None:
        return None
    kind, spec = get_structured_output_key(structured)
    if not isinstance(spec, str):
        return None
    # vLLM passes no tokenizer but for Mistral's, which lives as long as the engine.
    return (
        str(kind),
        hashlib.blake2b(spec.encode("utf-8", "surrogatepass"), digest_size=20).digest(),
        id(tokenizer),
    )


def install() -> None:
    """Wrap vLLM's guidance grammar check (in every vLLM process; it runs in the API one)."""
    try:
        from vllm.v1.structured_output import backend_guidance
    except ImportError:
        return
    if getattr(backend_guidance.validate_guidance_grammar, "_wrapserve_validated_grammars", False):
        return
    backend_guidance.validate_guidance_grammar = remembering(backend_guidance.validate_guidance_grammar)
    log.info("wrapserve: guidance grammars checked once each (up to %d remembered)", CAPACITY)
