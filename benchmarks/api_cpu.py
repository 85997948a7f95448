"""API-process CPU per call: Wrapserve's wrapper routes and vLLM's own server, side by side.

The figure issue 21 sets a target on (Wrapserve / vLLM at most 0.33 for classify and for
extract), measured as ``benchmarks.run`` measures it (``Scenarios.compare``: the same
workload on each server, one at a time, rounds in alternating order, CPU seconds of each
server's API process over the calls it answered), without the rest of the full bench.

    python -m benchmarks.api_cpu [--classify 300] [--extract 64] [--rounds 2] [--concurrency 64]
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
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classify", type=int, default=300)
    parser.add_argument("--extract", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "api_cpu.json")
    args = parser.parse_args()
    config = ServerConfig.cpu_defaults()
    work = Path(tempfile.mkdtemp(prefix="wrapserve-api-cpu-"))
    with Servers(config, work) as servers:
        ws_server = servers.start_wrapserve()
        vllm_server = servers.start_vllm()
        results = asyncio.run(_measure(ws_server, vllm_server, config, args))
    shutil.rmtree(work, ignore_errors=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    for name, row in results.items():
        print(name, "API CPU ms/call", row["api_cpu_ms_per_call"], "ratio", row["api_cpu_ratio_vs_vllm"])


if __name__ == "__main__":
    main()
