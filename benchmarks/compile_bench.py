"""Grammar compile time per schema over a maskbench sample, for Wrapserve and three backends.

- wrapserve: what a ``response_format`` schema costs Wrapserve: the keyword policy, the
  answer validator, llguidance's grammar (vetted), and the matcher the engine builds;
  a schema the policy refuses counts as a rejection with a clear error.
- outlines: outlines' exact subset (``compact_regex``), then outlines-core builds the token
  index vLLM's outlines backend needs (the expensive part).
- xgrammar and guidance (llguidance), for comparison, through their own Python APIs with
  the same tokenizer and no free whitespace.

Each backend compiles in a worker process, one schema at a time, with a wall-clock budget
per schema: a schema that overruns it is counted as a timeout and its worker is killed and
replaced, so a hang is counted, not suffered.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import statistics
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = ["MASKBENCH", "run", "sample_schemas"]

MASKBENCH = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "maskbench"
READY_TIMEOUT_S = 180


def sample_schemas(folder: Path, count: int, seed: int = 0) -> list[tuple[str, Any]]:
    """A deterministic sample of (file name, schema) from maskbench, across its sources."""
    files = sorted(folder.glob("*.json"))
    chosen = random.Random(seed).sample(files, min(count, len(files)))
    return [(path.name, json.loads(path.read_text())["schema"]) for path in sorted(chosen)]


def _outlines_vocabulary(tokenizer: Any) -> Any:
    import outlines_core
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    to_byte = {char: byte for byte, char in bytes_to_unicode().items()}
    special = set(tokenizer.all_special_tokens)
    mapping: dict[bytes, list[int]] = {}
    for token, token_id in tokenizer.get_vocab().items():
        if token in special or token_id == tokenizer.eos_token_id:
            continue
        if all(char in to_byte for char in token):
            data = bytes(to_byte[char] for char in token)
        else:
            data = tokenizer.convert_tokens_to_string([token]).encode()
        if data:
            mapping.setdefault(data, []).append(token_id)
    return outlines_core.Vocabulary(tokenizer.eos_token_id, mapping)


def _compiler(backend: str, model_dir: str) -> Any:
    """A function schema -> None that compiles fully, raising ValueError on a clean rejection."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if backend == "outlines":
        import outlines_core

        from server.structured.grammar import GrammarLimits, SchemaRejected, compact_regex

        vocabulary, limits = _outlines_vocabulary(tokenizer), GrammarLimits()

        def outlines(schema: Any) -> None:
            try:
                regex = compact_regex(schema, limits)
            except SchemaRejected as error:
                raise ValueError(error.message) from None
            except (RecursionError, TypeError, KeyError) as error:
                raise ValueError(f"cannot be compiled to a grammar: {error}") from None
            outlines_core.Index(regex, vocabulary)

        return outlines
    if backend == "wrapserve":
        import llguidance
        import llguidance.hf

        from server.structured.grammar import _compile as compile_form
        from server.structured.policy import GrammarLimits, SchemaRejected, plan_schema
        from server.structured.validation import AnswerValidator, SchemaInvalid

        lltokenizer = llguidance.hf.from_tokenizer(tokenizer)  # type: ignore[arg-type]
        limits = GrammarLimits()

        def wrapserve(schema: Any) -> None:
            """What a response_format schema costs the server: the policy, the validator,
            llguidance's grammar (vetted, as GrammarCompiler does), and the matcher the
            engine builds from it on the real tokenizer."""
            try:
                plan = plan_schema(schema, limits)
                AnswerValidator(plan.validation)
                spec, _ = compile_form("json", plan.grammar, 0, plan.grammar_unbounded)
            except (SchemaRejected, SchemaInvalid) as error:
                raise ValueError(str(error)[:200]) from None
            matcher = llguidance.LLMatcher(lltokenizer, llguidance.LLMatcher.grammar_from_json_schema(spec))
            if matcher.is_error():
                raise ValueError(matcher.get_error()[:200])

        return wrapserve
    if backend == "xgrammar":
        import xgrammar

        compiler = xgrammar.GrammarCompiler(
            xgrammar.TokenizerInfo.from_huggingface(tokenizer), cache_enabled=False
        )

        def xgr(schema: Any) -> None:
            try:
                compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
            except RuntimeError as error:
                raise ValueError(str(error).splitlines()[0][:200]) from None

        return xgr
    if backend == "guidance":
        import llguidance
        import llguidance.hf

        lltokenizer = llguidance.hf.from_tokenizer(tokenizer)  # type: ignore[arg-type]

        def guidance(schema: Any) -> None:
            try:
                grammar = llguidance.LLMatcher.grammar_from_json_schema(
                    json.dumps(schema), defaults={"whitespace_flexible": False}
                )
            except Exception as error:  # llguidance raises ValueError/RuntimeError variants
                raise ValueError(str(error).splitlines()[0][:200]) from None
            matcher = llguidance.LLMatcher(lltokenizer, grammar)
            if matcher.is_error():
                raise ValueError(matcher.get_error()[:200])

        return guidance
    raise ValueError(f"unknown backend {backend!r}")


def _worker(backend: str, model_dir: str, conn: Connection) -> None:
    compile_one = _compiler(backend, model_dir)
    conn.send(("ready", 0.0, ""))
    while True:
        try:
            schema = conn.recv()
        except EOFError:
            return
        started = time.perf_counter()
        try:
            compile_one(schema)
            conn.send(("compiled", (time.perf_counter() - started) * 1000, ""))
        except ValueError as error:
            conn.send(("rejected", (time.perf_counter() - started) * 1000, str(error)[:200]))
        except Exception as error:
            conn.send(
                ("error", (time.perf_counter() - started) * 1000, f"{type(error).__name__}: {error}"[:200])
            )


class _Worker:
    def __init__(self, backend: str, model_dir: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker, args=(backend, str(model_dir), child), daemon=True)
        self.process.start()
        if not self.conn.poll(READY_TIMEOUT_S):
            self.kill()
            raise RuntimeError(f"{backend} worker did not start")
        self.conn.recv()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(10)


def _percentile(values: Sequence[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))], 2)


def bench_backend(
    backend: str, schemas: list[tuple[str, Any]], timeout_s: float, model_dir: Path
) -> dict[str, Any]:
    outcomes: dict[str, int] = {"compiled": 0, "rejected": 0, "timeout": 0, "error": 0, "crashed": 0}
    times: list[float] = []
    examples: dict[str, list[str]] = {}
    worker: _Worker | None = None
    started = time.monotonic()
    try:
        for name, schema in schemas:
            worker = worker or _Worker(backend, model_dir)
            worker.conn.send(schema)
            if not worker.conn.poll(timeout_s):
                outcome, detail = "timeout", f"over {timeout_s:g}s"
                worker.kill()
                worker = None
            else:
                try:
                    outcome, ms, detail = worker.conn.recv()
                except EOFError:
                    outcome, detail = "crashed", "worker died"
                    worker.kill()
                    worker = None
                else:
                    if outcome == "compiled":
                        times.append(ms)
            outcomes[outcome] += 1
            if outcome != "compiled" and len(examples.setdefault(outcome, [])) < 3:
                examples[outcome].append(f"{name}: {detail}")
    finally:
        if worker is not None:
            worker.kill()
    total = len(schemas)
    return {
        "schemas": total,
        **outcomes,
        "coverage": round((outcomes["compiled"] + outcomes["rejected"]) / total, 4) if total else None,
        "compiled_share": round(outcomes["compiled"] / total, 4) if total else None,
        "p50_ms": _percentile(times, 0.5),
        "p99_ms": _percentile(times, 0.99),
        "mean_ms": round(statistics.fmean(times), 2) if times else None,
        "wall_s": round(time.monotonic() - started, 1),
        "examples": examples,
    }


def run(
    folder: Path, count: int, timeout_s: float, model_dir: Path, backends: Sequence[str]
) -> dict[str, Any]:
    """Compile the same sample with each backend; ``coverage`` = compiled or cleanly rejected."""
    schemas = sample_schemas(folder, count)
    results: dict[str, Any] = {"timeout_s": timeout_s, "sample": len(schemas), "backends": {}}
    for backend in backends:
        print(f"[bench] compiling {len(schemas)} schemas with {backend}", flush=True)
        try:
            results["backends"][backend] = bench_backend(backend, schemas, timeout_s, model_dir)
        except (ImportError, RuntimeError) as error:
            results["backends"][backend] = {"unavailable": f"{type(error).__name__}: {error}"}
    return results
