"""``python -m benchmarks.grammar_step``: one constrained decode step's grammar work, per call.

What vLLM's engine core does with an outlines grammar for each request at each decode step,
timed on its own over the tokens of real entity answers (the ``entities`` wrapper's compact
grammar, the model's own vocabulary): ``write_mask_into`` (the next step's token mask) and
``advance`` as vLLM calls it (which also lists the tokens allowed next) against
``advance(token, return_tokens=False)`` (what ``server/vllm/plugins/grammar_advance.py`` makes it call).
Both ways walk the same answers in the same run, alternating, so their ratio is side by side.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.servers import ServerConfig
from server.structured.grammar import compact_regex
from wrappers.catalogue.extract import Entities

ANSWERS = (
    '{"entities":[{"text":"Maria Lopez","type":"PERSON"},{"text":"Google","type":"ORG"},'
    '{"text":"London","type":"LOCATION"},{"text":"2020","type":"DATE"}]}',
    '{"entities":[{"text":"Tim Cook","type":"PERSON"},{"text":"iPhone 15","type":"PRODUCT"}]}',
    '{"entities":[]}',
)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.grammar_step", description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=ServerConfig().model_dir)
    parser.add_argument("--repeats", type=int, default=20, help="walks over the answers per way")
    return parser.parse_args()


def main() -> int:
    args = _args()
    import outlines_core as oc
    import torch
    from transformers import AutoTokenizer
    from vllm.v1.structured_output.utils import get_outlines_vocabulary

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    regex = compact_regex(Entities.Output.model_json_schema())
    # A Hugging Face tokenizer, which vLLM's TokenizerLike protocol describes only loosely.
    index = oc.Index(regex, get_outlines_vocabulary(tokenizer).inner)  # type: ignore[arg-type]
    answers = [tokenizer.encode(answer, add_special_tokens=False) for answer in ANSWERS]
    row = torch.full(((len(tokenizer) + 31) // 32,), -1, dtype=torch.int32)

    def walk(advance: Callable[[object, int], object]) -> tuple[list[float], list[float]]:
        mask_s: list[float] = []
        advance_s: list[float] = []
        for tokens in answers:
            guide = oc.Guide(index)
            for token in tokens:
                started = time.perf_counter()
                guide.write_mask_into(row.data_ptr(), row.numel(), row.element_size())
                mask_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                advance(guide, token)
                advance_s.append(time.perf_counter() - started)
        return mask_s, advance_s

    listing: list[float] = []
    quiet: list[float] = []
    masks: list[float] = []
    for _ in range(args.repeats):  # alternating, so a drift of the box falls on both ways
        mask_s, advance_s = walk(lambda guide, token: guide.advance(token))  # type: ignore[attr-defined]
        listing += advance_s
        masks += mask_s
        quiet += walk(lambda guide, token: guide.advance(token, return_tokens=False))[1]  # type: ignore[attr-defined]
    tokens = sum(len(tokens) for tokens in answers)
    print(f"{len(answers)} entity answers, {tokens} tokens, {args.repeats} walks per way")
    for name, times in (
        ("write_mask_into", masks),
        ("advance (vLLM's call)", listing),
        ("advance, return_tokens=False", quiet),
    ):
        print(
            f"{name:30s} mean {statistics.fmean(times) * 1e6:8.1f} us   "
            f"median {statistics.median(times) * 1e6:7.1f} us   max {max(times) * 1e6:8.1f} us"
        )
    print(
        f"advance per token, vLLM's call / return_tokens=False: {statistics.fmean(listing) / statistics.fmean(quiet):.0f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
