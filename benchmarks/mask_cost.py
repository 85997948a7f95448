"""``python -m benchmarks.mask_cost``: one decode step's grammar work on each of vLLM's backends.

What vLLM's engine core does for a constrained request every step (fill the request's row of
the token bitmask, then advance the grammar by the sampled token), timed on its own for
outlines (outlines_core's ``Guide``, advanced as ``server/vllm/plugins/grammar_advance.py``
makes it), guidance (vLLM's ``GuidanceGrammar``; also wrapped in the JSON digit bound of
``server/vllm/plugins/number_digits.py``, as the engine runs client schemas) and xgrammar (its ``GrammarMatcher``), on the
model's own vocabulary, over the tokens of real answers, the backends alternating in one run.
Two grammars: a wrapper's (the ``entities`` output as its outlines regex, which every backend
takes) and a client's JSON Schema (each backend compiling it its own way).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.grammar_step import ANSWERS as ENTITY_ANSWERS
from benchmarks.servers import ServerConfig
from server.structured.grammar import compact_regex
from server.structured.policy import GrammarLimits, plan_schema
from wrappers.catalogue.extract import Entities

Step = Callable[[int], None]  # fill the mask, then advance by the token

CLIENT_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "price": {"type": "number", "minimum": 0},
        "rating": {"type": "number", "minimum": 0, "maximum": 5},
        "scores": {"type": "array", "items": {"type": "number"}},
    },
    "required": ["name", "price", "rating", "scores"],
}
CLIENT_ANSWERS = (  # number-heavy, where the digit bound does its work
    {"name": "Blue kettle", "price": 39.99, "rating": 4.25, "scores": [0.5, -1.75, 12, 3.141592653589793]},
    {"name": "Desk lamp, brass", "price": 120, "rating": 3.9, "scores": []},
    {"name": "Tea", "price": 4.5, "rating": 5, "scores": [0.0001, 2500.5]},
)  # no exponents: the grammar of a bounded number has none


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mask_cost", description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=ServerConfig().model_dir)
    parser.add_argument("--repeats", type=int, default=10, help="walks over the answers per backend")
    return parser.parse_args()


def main() -> int:
    args = _args()
    import llguidance
    import llguidance.hf
    import llguidance.torch as llguidance_torch
    import outlines_core as oc
    import torch
    import xgrammar as xgr
    from outlines_core.json_schema import build_regex_from_schema
    from transformers import AutoTokenizer
    from vllm.v1.structured_output.backend_guidance import GuidanceGrammar
    from vllm.v1.structured_output.utils import get_outlines_vocabulary

    from server.structured.digits import DigitBound
    from server.vllm.plugins.number_digits import DigitBoundGrammar

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    vocab_size = len(tokenizer)
    ll_tokenizer = llguidance.hf.from_tokenizer(tokenizer)  # type: ignore[arg-type]
    outlines_vocabulary = get_outlines_vocabulary(tokenizer).inner  # type: ignore[arg-type]
    xgr_compiler = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size))
    ll_bitmask = llguidance_torch.allocate_token_bitmask(1, ll_tokenizer.vocab_size)
    xgr_bitmask = xgr.allocate_token_bitmask(1, vocab_size)
    outlines_row = torch.full(((vocab_size + 31) // 32,), -1, dtype=torch.int32)

    def outlines_walker(regex: str) -> Callable[[], Step]:
        index = oc.Index(regex, outlines_vocabulary)

        def start() -> Step:
            guide = oc.Guide(index)

            def step(token: int) -> None:
                guide.write_mask_into(
                    outlines_row.data_ptr(), outlines_row.numel(), outlines_row.element_size()
                )
                guide.advance(token, return_tokens=False)

            return step

        return start

    def guidance_walker(grammar: str, bounded: bool = False) -> Callable[[], Step]:
        def start() -> Step:
            matcher = llguidance.LLMatcher(ll_tokenizer, grammar, log_level=0)
            plain = GuidanceGrammar(
                ll_matcher=matcher, ll_tokenizer=ll_tokenizer, vocab_size=ll_tokenizer.vocab_size
            )
            walker = DigitBoundGrammar(plain, DigitBound(ll_tokenizer)) if bounded else plain

            def step(token: int) -> None:
                walker.fill_bitmask(ll_bitmask, 0)
                walker.accept_tokens("r", [token])

            return step

        return start

    def xgrammar_walker(compiled: Any) -> Callable[[], Step]:
        def start() -> Step:
            matcher = xgr.GrammarMatcher(compiled)

            def step(token: int) -> None:
                matcher.fill_next_token_bitmask(xgr_bitmask, 0)
                matcher.accept_token(token)

            return step

        return start

    wrapper_regex = compact_regex(Entities.Output.model_json_schema())
    client_grammar = llguidance.LLMatcher.grammar_from_json_schema(
        plan_schema(CLIENT_SCHEMA, GrammarLimits()).grammar
    )
    cases: dict[str, tuple[list[list[int]], dict[str, Callable[[], Step]]]] = {
        "wrapper regex (entities)": (
            [tokenizer.encode(answer, add_special_tokens=False) for answer in ENTITY_ANSWERS],
            {
                "outlines": outlines_walker(wrapper_regex),
                "guidance": guidance_walker(llguidance.LLMatcher.grammar_from_regex(wrapper_regex)),
                "xgrammar": xgrammar_walker(xgr_compiler.compile_regex(wrapper_regex)),
            },
        ),
        "client JSON Schema": (
            [
                tokenizer.encode(json.dumps(answer, separators=(",", ":")), add_special_tokens=False)
                for answer in CLIENT_ANSWERS
            ],
            {
                "outlines": outlines_walker(build_regex_from_schema(json.dumps(CLIENT_SCHEMA))),
                "guidance": guidance_walker(client_grammar),
                "guidance + digit bound": guidance_walker(client_grammar, bounded=True),
                "xgrammar": xgrammar_walker(
                    xgr_compiler.compile_json_schema(json.dumps(CLIENT_SCHEMA), any_whitespace=False)
                ),
            },
        ),
    }
    for case, (answers, _) in cases.items():  # a walk off the grammar would time an errored matcher
        grammar = client_grammar if "JSON" in case else llguidance.LLMatcher.grammar_from_regex(wrapper_regex)
        for tokens in answers:
            checker = llguidance.LLMatcher(ll_tokenizer, grammar, log_level=0)
            assert checker.validate_tokens(tokens) == len(tokens), f"{case}: an answer the grammar refuses"
    results: dict[str, dict[str, dict[str, float]]] = {}
    for case, (answers, walkers) in cases.items():
        times: dict[str, list[float]] = {name: [] for name in walkers}
        for _ in range(args.repeats):  # alternating, so a drift of the box falls on every backend
            for name, start in walkers.items():
                for tokens in answers:
                    step = start()
                    for token in tokens:
                        started = time.perf_counter()
                        step(token)
                        times[name].append(time.perf_counter() - started)
        count = sum(len(answer) for answer in answers)
        inside = 0  # steps that start inside a number: the only ones the digit bound narrows
        for answer in answers:
            bound = DigitBound(ll_tokenizer)
            for token in answer:
                inside += bound.inside_number
                bound.consume([token])
        print(
            f"{case}: {len(answers)} answers, {count} tokens ({inside} inside a number), "
            f"{args.repeats} walks per backend"
        )
        results[case] = {}
        for name, samples in times.items():
            mean, median = statistics.fmean(samples) * 1e6, statistics.median(samples) * 1e6
            results[case][name] = {"mean_us": round(mean, 1), "median_us": round(median, 1)}
            print(f"  {name:24s} mask+advance per token: mean {mean:7.1f} us   median {median:7.1f} us")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
