"""API-process CPU per call: Wrapserve's wrapper routes and vLLM's own server, side by side.

The figure issue 21 sets a target on (Wrapserve / vLLM at most 0.33 for classify and for
extract), measured as ``benchmarks.run`` measures it (``Scenarios.compare``: the same
workload on each server, one at a time, rounds in alternating order, CPU seconds of each
server's API process over the calls it answered), without the rest of the full bench.

    python -m benchmarks.api_cpu [--classify 300] [--extract 64] [--rounds 2] [--concurrency 64]

Beside the ratios, the floors that bound them (``floors`` in the results): each server's
API CPU for a request that does no work (``GET /health``, the same concurrency), and the
API-side CPU of vLLM's engine client alone for the scored classify calls (``AsyncLLM``
in this process with the model, after both servers have stopped, no HTTP), so the part
of a call Wrapserve's own code can still cut is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx

from benchmarks.clients import VllmClient, WrapserveClient
from benchmarks.run import _layout
from benchmarks.scenarios import Scenarios, Sizes
from benchmarks.servers import ServerConfig, Servers, StartedServer
from benchmarks.workloads import build_workload

__all__ = ["main"]


async def _measure(
    ws_server: StartedServer, vllm_server: StartedServer, config: ServerConfig, args: argparse.Namespace
) -> dict[str, Any]:
    sizes = Sizes(
        classify=args.classify,
        extract=args.extract,
        report=0,
        concurrency=args.concurrency,
        sweep=(),
        steady_calls=0,
        variant_share=1.0,
        overhead_rounds=0,
    )
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256, keepalive_expiry=2.0)
    results: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        ws = WrapserveClient(http, ws_server.base_url)
        vllm = VllmClient(http, vllm_server.base_url, config.model_id, _layout(config).padding)
        cpu = {"wrapserve": ws_server.cpu_seconds, "vllm": vllm_server.cpu_seconds}
        scenarios = Scenarios(ws, vllm, sizes, cpu)
        for name, count in (("classify", args.classify), ("extract", args.extract)):
            workload = build_workload(name, count)
            await scenarios.warm(workload)
            measured = await scenarios.compare(workload, args.rounds)
            per_call = measured["cpu_ms_per_call"]
            api = {server: per_call[server]["api"] for server in ("wrapserve", "vllm")}
            results[name] = {
                "api_cpu_ms_per_call": api,
                "api_cpu_ratio_vs_vllm": round(api["wrapserve"] / api["vllm"], 3),
                "engine_cpu_ms_per_call": {s: per_call[s]["engine"] for s in ("wrapserve", "vllm")},
                "calls_per_s": {s: measured[s]["calls_per_s"] for s in ("wrapserve", "vllm")},
                "valid_share": {s: measured[s]["valid_share"] for s in ("wrapserve", "vllm")},
                "calls": {s: measured[s]["calls"] for s in ("wrapserve", "vllm")},
                "rounds": args.rounds,
            }
            print(f"[api-cpu] {name}: {json.dumps(results[name])}", flush=True)
        results["floors"] = {
            "http_request_api_cpu_ms": {
                "wrapserve": await _idle_request_cpu_ms(http, ws_server, args),
                "vllm": await _idle_request_cpu_ms(http, vllm_server, args),
            }
        }
    return results


async def _idle_request_cpu_ms(
    http: httpx.AsyncClient, server: StartedServer, args: argparse.Namespace
) -> float:
    """API CPU per ``GET /health``: what the HTTP stack costs before any work."""
    gate = asyncio.Semaphore(args.concurrency)

    async def one() -> None:
        async with gate:
            (await http.get(f"{server.base_url}/health")).raise_for_status()

    await asyncio.gather(*(one() for _ in range(200)))
    before = server.cpu_seconds()["api"]
    await asyncio.gather(*(one() for _ in range(args.floor_requests)))
    return round((server.cpu_seconds()["api"] - before) * 1000 / args.floor_requests, 3)


async def _engine_client_cpu_ms(config: ServerConfig, work: Path, args: argparse.Namespace) -> float:
    """API-side CPU per scored classify call of vLLM's engine client alone: the prompts
    tokenized beforehand, ``VllmEngine.score`` (one ``AsyncLLM`` request per call) timed."""
    import time

    from models.manifest import ModelRegistry
    from models.resolve import resolve_weights
    from server.engine.protocol import ChatMessage
    from server.invocation.decoding import Decoder
    from server.settings import Settings
    from server.vllm.engine import VllmEngine

    settings = Settings.model_validate(
        {
            "home": work / "floor-home",
            "weights_dir": config.weights_dir,
            "max_model_len": config.max_model_len,
            "dtype": config.dtype,
            "block_size": config.block_size,
            "kv_cache_gib": config.kv_cache_gib,
            "enforce_eager": config.enforce_eager,
        }
    )
    manifest = ModelRegistry.load().get(config.model_id)
    engine = await VllmEngine.start(settings, manifest, resolve_weights(manifest, settings.weights_path))
    try:
        decoder, calls = Decoder(), []
        for task in build_workload("classify", args.classify).variant(7).tasks:
            data = task.wrapper.Input.model_validate(task.input)
            field = decoder.plan("auto", task.wrapper.output_schema(data)).choice
            assert field is not None, "classify calls are scored"
            messages = [ChatMessage(role=m.role, content=m.content) for m in task.wrapper.messages(data)]
            prompt = await engine.encode_chat(
                messages, assistant_prefix=field.prefix, align_through=task.wrapper.user_head()
            )
            labels = [await engine.encode_text(field.continuation(label)) for label in field.labels]
            calls.append((prompt, labels))
        gate = asyncio.Semaphore(args.concurrency)

        async def one(index: int, prompt: list[int], labels: list[list[int]]) -> None:
            async with gate:
                await engine.score(f"floor-{index}", prompt, labels)

        await asyncio.gather(*(one(-i - 1, *calls[i % len(calls)]) for i in range(32)))
        started = time.process_time()
        await asyncio.gather(*(one(i, *call) for i, call in enumerate(calls)))
        return round((time.process_time() - started) * 1000 / len(calls), 3)
    finally:
        await engine.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classify", type=int, default=300)
    parser.add_argument("--extract", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--floor-requests", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "api_cpu.json")
    args = parser.parse_args()
    config = ServerConfig.cpu_defaults()
    work = Path(tempfile.mkdtemp(prefix="wrapserve-api-cpu-"))
    with Servers(config, work) as servers:
        ws_server = servers.start_wrapserve()
        vllm_server = servers.start_vllm()
        results = asyncio.run(_measure(ws_server, vllm_server, config, args))
    # One engine at a time on a CPU box: the in-process one starts after both servers stop.
    results["floors"]["engine_client_api_cpu_ms_per_classify"] = asyncio.run(
        _engine_client_cpu_ms(config, work, args)
    )
    shutil.rmtree(work, ignore_errors=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    for name in ("classify", "extract"):
        row = results[name]
        print(name, "API CPU ms/call", row["api_cpu_ms_per_call"], "ratio", row["api_cpu_ratio_vs_vllm"])
    print("floors", json.dumps(results["floors"]))


if __name__ == "__main__":
    main()
