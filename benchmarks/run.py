"""``python -m benchmarks.run``: the CPU-mode benchmark (``make bench``), one run, side by side.

Starts Wrapserve, measures its first calls, starts vLLM's own OpenAI server (same virtualenv,
model folder, engine options and grammar backend), then runs every pair of measurements
alternating between the two, stops both, times grammar compilation over maskbench, and
writes ``results/latest.json``, ``results/latest.md`` and PNG plots.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks import compile_bench, coverage, report
from benchmarks.clients import VllmClient, WrapserveClient
from benchmarks.scenarios import Scenarios, Sizes, first_call_ms
from benchmarks.servers import ServerConfig, Servers, StartedServer
from benchmarks.workloads import Task, build_workload, extract_tasks
from server.vllm.args import CPU_BLOCK_SIZE
from server.vllm.dtype import cpu_has_native_bf16
from server.vllm.plugins import cpu_grammar_mask, grammar_advance
from server.vllm.prefix_layout import ChatLayout
from wrappers.catalogue.classify import Sentiment

__all__ = ["main"]

ISSUE_SCALE = {"classify": 500, "extract": 200, "report": 100}
DEFAULTS: dict[str, dict[str, Any]] = {
    "full": {
        "classify": 300,
        "extract": 100,
        "report": 40,
        "compile": 300,
        "coverage": 300,
        "sweep": "1,8,32,64",
        "steady": 10,
        "starts": 3,
    },
    "quick": {
        "classify": 120,
        "extract": 40,
        "report": 12,
        "compile": 80,
        "coverage": 60,
        "sweep": "1,16,64",
        "steady": 6,
        "starts": 1,
    },
}


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller workloads (~15 minutes on 2 idle CPU cores, most of it the report workload)",
    )
    parser.add_argument("--workloads", default="classify,extract,report", help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="results folder")
    parser.add_argument("--classify", type=int, help="classification calls (issue: 500)")
    parser.add_argument("--extract", type=int, help="entity extractions (issue: 200)")
    parser.add_argument("--report", type=int, help="short reports (issue: 100)")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight per workload")
    parser.add_argument("--sweep", help="concurrency levels for the throughput plot, e.g. 1,8,32,64")
    parser.add_argument(
        "--first-call-starts",
        type=int,
        help="Wrapserve starts whose first calls are timed (the median is reported; default 3, quick 1)",
    )
    parser.add_argument("--compile-schemas", type=int, help="maskbench schemas per grammar backend")
    parser.add_argument("--compile-timeout", type=float, default=5.0, help="seconds per schema")
    parser.add_argument("--skip-compile", action="store_true", help="no grammar compile benchmark")
    parser.add_argument("--skip-servers", action="store_true", help="only the grammar compile benchmark")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model folder under --weights-dir")
    parser.add_argument("--weights-dir", type=Path, default=ServerConfig.weights_dir)
    parser.add_argument("--backend", default="guidance", help="structured-output backend of both servers")
    parser.add_argument(
        "--memory-fraction", type=float, default=0.15, help="gpu_memory_utilization per server"
    )
    parser.add_argument(
        "--kv-cache-gib", type=float, default=1.0, help="KV cache per server; 0: from --memory-fraction"
    )
    parser.add_argument(
        "--cpu-bind",
        default="auto",
        help="VLLM_CPU_OMP_THREADS_BIND for both engines, e.g. 1 on a shared box",
    )
    parser.add_argument("--no-eager", action="store_true", help="let vLLM compile (slow start on CPU)")
    parser.add_argument(
        "--vllm-fast-cpu-masks",
        action="store_true",
        help="give vLLM's server Wrapserve's CPU grammar-mask plugin too (default: stock vLLM's masks)",
    )
    parser.add_argument(
        "--vllm-fast-grammar-advance",
        action="store_true",
        help="give vLLM's server Wrapserve's outlines-advance plugin too (default: stock vLLM's)",
    )
    parser.add_argument(
        "--dtype",
        default=None,
        help="weights' dtype for both servers (default: bfloat16 on GPU and on CPUs with hardware bf16, else float32)",
    )
    parser.add_argument(
        "--block-size",
        type=int,
        default=None,
        help="KV cache block size for both servers (default: 32 on CPU, as Wrapserve; vLLM's on GPU)",
    )
    parser.add_argument("--load-format", default="auto", help="'dummy' for random weights from config.json")
    parser.add_argument("--maskbench", type=Path, default=compile_bench.MASKBENCH)
    parser.add_argument("--coverage-schemas", type=int, help="maskbench schemas for schema_coverage")
    parser.add_argument("--coverage-max-tokens", type=int, default=256)
    parser.add_argument("--skip-coverage", action="store_true", help="no schema_coverage measurement")
    parser.add_argument(
        "--update",
        action="store_true",
        help="keep the sections of the previous latest.json this run does not measure (meta says which ran when)",
    )
    return parser.parse_args(argv)


def _updated(previous: dict[str, Any], fresh: dict[str, Any]) -> dict[str, Any]:
    """The previous results with this run's sections in place of theirs. Each section's
    ratios are still measured side by side within one run; ``meta.sections`` says which
    run (date and command) each section comes from."""
    measured = [key for key in fresh if key != "meta"]
    sections = dict(previous.get("meta", {}).get("sections") or {})
    for key in previous:
        if key not in ("meta", "plots") and key not in sections:
            sections[key] = {"date": previous["meta"].get("date"), "command": previous["meta"].get("command")}
    for key in measured:
        sections[key] = {"date": fresh["meta"]["date"], "command": fresh["meta"]["command"]}
    merged = {**previous, **{key: fresh[key] for key in measured}}
    merged["meta"] = {**previous.get("meta", {}), "sections": sections, "updated": fresh["meta"]["date"]}
    return merged


def _schema_coverage(args: argparse.Namespace, config: ServerConfig) -> dict[str, Any]:
    """The same maskbench sample through Wrapserve and vLLM's server (its default backend and
    guidance), one server at a time (benchmarks/coverage.py)."""
    count = args.coverage_schemas or int(DEFAULTS["quick" if args.quick else "full"]["coverage"])
    schemas = coverage.sample_by_set(args.maskbench, count)
    print(f"[bench] schema coverage over {len(schemas)} maskbench schemas, 3 servers", flush=True)
    blocks: dict[str, dict[str, Any]] = {}
    work = Path(tempfile.mkdtemp(prefix="wrapserve-coverage-"))
    with Servers(config, work) as servers:
        starts = {
            "wrapserve": lambda: servers.start_wrapserve(
                "wrapserve-coverage", WRAPSERVE_STRUCTURED_OUTPUT_BACKEND="guidance"
            ),
            "vllm_default": lambda: servers.start_vllm("vllm-auto", backend="auto"),
            "vllm_guidance": lambda: servers.start_vllm("vllm-guidance", backend="guidance"),
        }
        for name, start in starts.items():
            server = start()
            outcomes = asyncio.run(
                coverage.measure(server.base_url, args.model, schemas, max_tokens=args.coverage_max_tokens)
            )
            servers.stop(server)
            blocks[name] = coverage.summarize(schemas, outcomes)
            print(f"[bench]   {name}: {blocks[name]['valid']}/{len(schemas)} valid", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    result = coverage.compare(blocks)
    result["meta"] = {
        "schemas": len(schemas),
        "max_tokens": args.coverage_max_tokens,
        "prompt": coverage.PROMPT,
    }
    return result


async def _timed_first_calls(base_url: str, random_weights: bool = False) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=600) as http:
        return await _first_calls(WrapserveClient(http, base_url), random_weights)


async def _first_calls(ws: WrapserveClient, random_weights: bool = False) -> dict[str, float]:
    """The first call of each kind right after /health says ready (grammars precompiled).
    With random weights (``--load-format dummy``) only the scored call: a generated answer is
    random text that runs into its token limit, so its latency says nothing about start-up."""
    sentiment = Task(Sentiment, {"text": "The first call after start-up: I really like this server."})
    calls = {"sentiment": await first_call_ms(lambda: ws.invoke(sentiment))}
    if not random_weights:
        entities = extract_tasks(1, seed=99)[0]
        calls["entities"] = await first_call_ms(lambda: ws.invoke(entities))
    return calls


def _layout(config: ServerConfig) -> ChatLayout:
    """The model's chat template and the servers' KV block size (vLLM's CUDA default: 16)."""
    from transformers import AutoTokenizer

    return ChatLayout(AutoTokenizer.from_pretrained(config.model_dir), None, config.block_size or 16)


async def _measure(
    ws_server: StartedServer,
    vllm_server: StartedServer,
    model: str,
    sizes: Sizes,
    names: list[str],
    first_ws: dict[str, float],
    out: dict[str, Any],
    layout: ChatLayout,
) -> None:
    """Fill ``out`` step by step, most important first, so an interrupted run keeps what it has."""
    # Both servers (uvicorn) close a connection idle for 5 s, httpx's own expiry too: a call
    # sent on a connection the server is closing at that moment failed with a ReadError (one in
    # a full run). Dropping idle connections sooner leaves that race to the client's side.
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256, keepalive_expiry=2.0)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        ws = WrapserveClient(http, ws_server.base_url)
        vllm = VllmClient(http, vllm_server.base_url, model, layout.padding)
        sentiment = Task(Sentiment, {"text": "The first call after start-up: I really like this server."})
        first_vllm = await first_call_ms(lambda: vllm.chat(sentiment))
        cpu = {"wrapserve": ws_server.cpu_seconds, "vllm": vllm_server.cpu_seconds}
        ws_openai = VllmClient(http, ws_server.base_url, model)  # same protocol, Wrapserve's engine
        scenarios = Scenarios(ws, vllm, sizes, cpu, wrapserve_openai=ws_openai)
        out["first_call"] = await scenarios.steady_state(first_ws, first_vllm)
        counts = {"classify": sizes.classify, "extract": sizes.extract, "report": sizes.report}
        workloads = {name: build_workload(name, counts[name]) for name in names}
        speedups: dict[str, Any] = {}
        out["speedups"] = speedups

        async def compare(name: str, rounds: int = 1) -> None:
            print(f"[bench] {name}: {len(workloads[name].tasks)} calls per server per round", flush=True)
            await scenarios.warm(workloads[name])
            out[name] = await scenarios.compare(workloads[name], rounds)

        if "classify" in workloads:
            await compare("classify", sizes.classify_rounds)
            print("[bench] speed-up on/off: choice scoring (classify decode modes)", flush=True)
            speedups["choice_scoring"] = await scenarios.decode_modes(
                workloads["classify"], ("score", "generate", "plain")
            )
        if "extract" in workloads:
            await compare("extract")
            print("[bench] structured vs unconstrained; speed-up on/off: forced prefix", flush=True)
            out["structured_overhead"] = await scenarios.structured_overhead(workloads["extract"])
            speedups["forced_prefix"] = await scenarios.decode_modes(
                workloads["extract"], ("generate", "plain")
            )
        if "classify" in workloads:
            print("[bench] speed-ups on/off: batch endpoint, prompt layout", flush=True)
            speedups["batch_endpoint"] = await scenarios.batch_vs_single(workloads["classify"])
            speedups["prefix_cache_layout"] = await scenarios.prefix_layout(workloads["classify"])
        if "extract" in workloads:
            print("[bench] speed-up on/off: compact JSON", flush=True)
            speedups["compact_json"] = await scenarios.compact_json(workloads["extract"])
        if "report" in workloads:
            await compare("report")
        if "classify" in workloads and sizes.sweep:
            print("[bench] throughput vs concurrency", flush=True)
            out["sweep"] = await scenarios.sweep(workloads["classify"])


def _sizes(args: argparse.Namespace) -> Sizes:
    mode = DEFAULTS["quick" if args.quick else "full"]
    return Sizes(
        classify=args.classify or int(mode["classify"]),
        extract=args.extract or int(mode["extract"]),
        report=args.report or int(mode["report"]),
        concurrency=args.concurrency,
        sweep=tuple(int(c) for c in str(args.sweep or mode["sweep"]).split(",") if c),
        steady_calls=int(mode["steady"]),
        variant_share=0.5 if args.quick else 0.4,
        # Even: as many rounds in each order. A run of 128 calls at 64 in flight is two waves,
        # and one long answer moves its round's ratio by tenths (0.968 and 0.778 in one run).
        overhead_rounds=2 if args.quick else 4,
        classify_rounds=1 if args.quick else 2,  # the figure with a target gets both orders
        onoff_rounds=1 if args.quick else 2,
        onoff_min_calls=0 if args.quick else 2 * args.concurrency,  # several waves per run
    )


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    sizes = _sizes(args)
    names = [name.strip() for name in args.workloads.split(",") if name.strip()]
    started = time.monotonic()
    results: dict[str, Any] = {
        "meta": {
            "mode": ("gpu" if _has_cuda() else "cpu") + ("-quick" if args.quick else ""),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.run", *(argv or sys.argv[1:])]),
            "model": args.model,
            "backend": args.backend,
            "host": {"platform": platform.platform(), "python": platform.python_version()},
            "sizes": {**sizes.__dict__, "sweep": list(sizes.sweep)},
            "issue_scale": ISSUE_SCALE,
            "order": "each pair runs on one server at a time (Wrapserve first, then vLLM); the other idles",
        }
    }
    on_gpu = shutil.which("nvidia-smi") is not None
    config = ServerConfig(
        model_id=args.model,
        weights_dir=args.weights_dir,
        memory_fraction=args.memory_fraction,
        enforce_eager=not args.no_eager,
        backend=args.backend,
        load_format=args.load_format,
        # What Wrapserve runs the embedded model in by default (server/vllm/dtype.py).
        dtype=args.dtype or ("bfloat16" if on_gpu or cpu_has_native_bf16() else "float32"),
        block_size=args.block_size or (None if on_gpu else CPU_BLOCK_SIZE),
        kv_cache_gib=args.kv_cache_gib or None,
        cpu_bind=args.cpu_bind,
        vllm_fast_cpu_masks=args.vllm_fast_cpu_masks,
        vllm_fast_grammar_advance=args.vllm_fast_grammar_advance,
    )
    results["meta"]["engine"] = {
        key: getattr(config, key)
        for key in (
            "dtype",
            "block_size",
            "kv_cache_gib",
            "memory_fraction",
            "enforce_eager",
            "max_model_len",
        )
    }
    # Wrapserve runs its engine plugins; vLLM's server only when asked. Wrapserve inherits the env.
    results["meta"]["vllm_fast_cpu_masks"] = config.vllm_fast_cpu_masks
    results["meta"]["wrapserve_fast_cpu_masks"] = cpu_grammar_mask.switched_on(os.environ)
    results["meta"]["vllm_fast_grammar_advance"] = config.vllm_fast_grammar_advance
    results["meta"]["wrapserve_fast_grammar_advance"] = grammar_advance.switched_on(os.environ)
    if not args.skip_servers:
        work = Path(tempfile.mkdtemp(prefix="wrapserve-bench-"))
        print(f"[bench] server logs in {work} (removed after a successful run)", flush=True)
        with Servers(config, work) as servers:
            # One first call per start is one sample on a noisy box: time the first calls
            # of several starts and report their median (each start's values are kept).
            starts = args.first_call_starts or int(DEFAULTS["quick" if args.quick else "full"]["starts"])
            print(f"[bench] starting Wrapserve (first calls timed on {starts} starts)", flush=True)
            random_weights = args.load_format == "dummy"
            ws_server = servers.start_wrapserve()
            per_start = [asyncio.run(_timed_first_calls(ws_server.base_url, random_weights))]
            for _ in range(starts - 1):
                servers.stop(ws_server)
                ws_server = servers.start_wrapserve()
                per_start.append(asyncio.run(_timed_first_calls(ws_server.base_url, random_weights)))
            first_ws = {name: statistics.median(s[name] for s in per_start) for name in per_start[0]}
            print("[bench] starting vLLM's OpenAI server", flush=True)
            vllm_server = servers.start_vllm()
            results["startup"] = {
                "wrapserve_s": round(ws_server.startup_s, 2),
                "vllm_s": round(vllm_server.startup_s, 2),
                "ratio": round(ws_server.startup_s / vllm_server.startup_s, 3),
                "note": "launch to /health 200; Wrapserve's includes compiling and warming every static grammar",
            }
            try:
                asyncio.run(
                    _measure(
                        ws_server,
                        vllm_server,
                        args.model,
                        sizes,
                        names,
                        first_ws,
                        results,
                        _layout(config),
                    )
                )
                for name, block in results.get("first_call", {}).items():
                    if name in first_ws:
                        block["first_ms_per_start"] = [round(s[name], 1) for s in per_start]
            except KeyboardInterrupt:
                results["meta"]["interrupted"] = "the run was stopped before every measurement was taken"
                report.write(results, args.out)
                print(f"[bench] interrupted: partial results in {args.out}", flush=True)
                raise
        shutil.rmtree(work, ignore_errors=True)
    if not args.skip_compile:
        count = args.compile_schemas or int(DEFAULTS["quick" if args.quick else "full"]["compile"])
        print(f"[bench] grammar compile times over {count} maskbench schemas", flush=True)
        results["compile"] = compile_bench.run(
            args.maskbench,
            count,
            args.compile_timeout,
            config.model_dir,
            ("wrapserve", "outlines", "xgrammar", "guidance"),
        )
    if not args.skip_coverage:
        results["schema_coverage"] = _schema_coverage(args, config)
    results["meta"]["wall_s"] = round(time.monotonic() - started, 1)
    previous = args.out / "latest.json"
    if args.update and previous.exists():
        results = _updated(json.loads(previous.read_text()), results)
    report.write(results, args.out)
    print(json.dumps(report.headline(results), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
