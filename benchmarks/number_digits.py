"""``python -m benchmarks.number_digits``: what the digit bound costs per decode step.

vLLM's engine core fills each JSON request's token mask from its llguidance grammar every
step; ``server/vllm/plugins/number_digits.py`` also fills the lexical matcher's mask and ANDs
the two (``server/structured/digits.py``). Timed here on its own, over the tokens of real
answers with numbers (the model's own vocabulary, the schema compiled as the policy compiles
it): vLLM's grammar alone against the same grammar with the bound, alternating in one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from benchmarks.servers import ServerConfig
from server.structured.policy import GrammarLimits, plan_schema

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "price": {"type": "number", "minimum": 0},
        "rating": {"type": "number", "minimum": 0, "maximum": 5},
        "scores": {"type": "array", "items": {"type": "number"}},
    },
    "required": ["name", "price", "rating", "scores"],
}
ANSWERS = (
    {"name": "Blue kettle", "price": 39.99, "rating": 4.25, "scores": [0.5, -1.75, 12, 3.141592653589793]},
    {"name": "Desk lamp, brass", "price": 120, "rating": 3.9, "scores": []},
    {"name": "Tea", "price": 4.5, "rating": 5, "scores": [1e-05, 2.5e3]},
)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.number_digits", description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=ServerConfig().model_dir)
    parser.add_argument("--repeats", type=int, default=20, help="walks over the answers per way")
    return parser.parse_args()


def main() -> int:
    args = _args()
    import llguidance
    import llguidance.hf
    import llguidance.torch as llguidance_torch
    from transformers import AutoTokenizer
    from vllm.v1.structured_output.backend_guidance import GuidanceGrammar

    from server.structured.digits import DigitBound
    from server.vllm.plugins.number_digits import DigitBoundGrammar

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    ll_tokenizer = llguidance.hf.from_tokenizer(tokenizer)  # type: ignore[arg-type]
    grammar = llguidance.LLMatcher.grammar_from_json_schema(plan_schema(SCHEMA, GrammarLimits()).grammar)
    answers = [
        tokenizer.encode(json.dumps(a, separators=(",", ":")), add_special_tokens=False) for a in ANSWERS
    ]
    bitmask = llguidance_torch.allocate_token_bitmask(1, ll_tokenizer.vocab_size)

    def walk(bounded: bool) -> list[float]:
        step_s: list[float] = []
        for tokens in answers:
            matcher = llguidance.LLMatcher(ll_tokenizer, grammar, log_level=0)
            plain = GuidanceGrammar(
                ll_matcher=matcher, ll_tokenizer=ll_tokenizer, vocab_size=ll_tokenizer.vocab_size
            )
            walker = DigitBoundGrammar(plain, DigitBound(ll_tokenizer)) if bounded else plain
            for token in tokens:
                started = time.perf_counter()
                walker.fill_bitmask(bitmask, 0)
                walker.accept_tokens("r", [token])
                step_s.append(time.perf_counter() - started)
        return step_s

    alone: list[float] = []
    bounded: list[float] = []
    for _ in range(args.repeats):  # alternating, so a drift of the box falls on both ways
        alone += walk(False)
        bounded += walk(True)
    tokens = sum(len(tokens) for tokens in answers)
    inside = 0  # steps that start inside a number: the only ones whose mask the bound narrows
    for answer in answers:
        bound = DigitBound(ll_tokenizer)
        for token in answer:
            inside += bound.inside_number
            bound.consume([token])
    print(
        f"{len(answers)} answers, {tokens} tokens ({inside} of them inside a number), {args.repeats} walks per way"
    )
    for name, times in (("vLLM's guidance grammar", alone), ("with the digit bound", bounded)):
        print(
            f"{name:24s} mask+accept per token: mean {statistics.fmean(times) * 1e6:7.1f} us   "
            f"median {statistics.median(times) * 1e6:7.1f} us   max {max(times) * 1e6:8.1f} us"
        )
    print(f"per token, bounded / alone: {statistics.fmean(bounded) / statistics.fmean(alone):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
