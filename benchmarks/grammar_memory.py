"""Memory and time a flood of distinct hostile schemas costs a grammar backend, side by side.

Each schema holds a long bounded repetition (``[a-z]{0,4400+i}``, distinct per schema, so no
cache helps), the shape that cost outlines' backend seconds and hundreds of MB of engine
memory per schema. For each backend the grammar is built on the model's real tokenizer and
advanced a few dozen tokens, as an engine would; the process's resident memory is read
before and after. Each backend runs in its own process, so their memory does not mix.

    python -m benchmarks.grammar_memory [--llguidance 100] [--outlines 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

from benchmarks.servers import ServerConfig

__all__ = ["measure"]


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


def _pattern(index: int) -> str:
    return f"[a-z]{{0,{4400 + index}}}"


def _llguidance(model_dir: str, count: int) -> dict[str, float]:
    import llguidance
    import llguidance.hf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    lltokenizer = llguidance.hf.from_tokenizer(tokenizer)  # type: ignore[arg-type]
    opening = tokenizer.encode('{"x":"abc', add_special_tokens=False)
    letters = tokenizer.encode("abc", add_special_tokens=False)[0]
    before, started = _rss_mb(), time.perf_counter()
    for index in range(count):
        schema = {
            "type": "object",
            "properties": {"x": {"type": "string", "pattern": _pattern(index)}},
            "required": ["x"],
            "x-guidance": {"whitespace_flexible": False},
        }
        matcher = llguidance.LLMatcher(
            lltokenizer, llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema))
        )
        for token in [*opening, *[letters] * 20]:
            matcher.compute_bitmask()
            matcher.consume_token(token)
        if matcher.is_error():
            raise RuntimeError(matcher.get_error())
    return {
        "schemas": count,
        "rss_growth_mb": round(_rss_mb() - before, 1),
        "s": round(time.perf_counter() - started, 2),
    }


def _outlines(model_dir: str, count: int) -> dict[str, float]:
    import outlines_core
    from transformers import AutoTokenizer

    from benchmarks.compile_bench import _outlines_vocabulary

    vocabulary = _outlines_vocabulary(AutoTokenizer.from_pretrained(model_dir))
    before, started = _rss_mb(), time.perf_counter()
    kept = []  # vLLM's backend keeps each built index for its grammar cache's lifetime
    for index in range(count):
        regex = '\\{"x":"' + _pattern(index) + '"\\}'
        kept.append(outlines_core.Index(regex, vocabulary))
    return {
        "schemas": count,
        "rss_growth_mb": round(_rss_mb() - before, 1),
        "s": round(time.perf_counter() - started, 2),
    }


def _run(backend: str, model_dir: str, count: int, queue: Any) -> None:
    queue.put((_llguidance if backend == "llguidance" else _outlines)(model_dir, count))


def measure(model_dir: Path, counts: dict[str, int]) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    results: dict[str, Any] = {}
    for backend, count in counts.items():
        queue = context.Queue()
        process = context.Process(target=_run, args=(backend, str(model_dir), count, queue))
        process.start()
        results[backend] = queue.get()
        process.join()
    for result in results.values():
        result["mb_per_schema"] = round(result["rss_growth_mb"] / result["schemas"], 2)
        result["ms_per_schema"] = round(result["s"] * 1000 / result["schemas"], 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llguidance", type=int, default=100)
    parser.add_argument("--outlines", type=int, default=2)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    model_dir = ServerConfig.weights_dir / args.model
    print(
        json.dumps(measure(model_dir, {"llguidance": args.llguidance, "outlines": args.outlines}), indent=2)
    )


if __name__ == "__main__":
    main()
