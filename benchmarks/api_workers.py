"""API workers: one Wrapserve with 1 HTTP process and one with N on the same engine, side by side.

Both servers are up at once (the one not measured idles); each workload runs on one, then
the other, then again in the other order, and the figures pool the rounds. Reported: calls/s
and their ratio N / 1, and CPU milliseconds per call in the API processes (the one server
process, or the N workers and the process that started them) and in the engine's processes.

    python -m benchmarks.api_workers [--workers 2] [--classify 200] [--extract 60] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks.clients import RunStats, WrapserveClient, run_bounded, summarize
from benchmarks.servers import ServerConfig, Servers, StartedServer
from benchmarks.workloads import classify_tasks, extract_tasks

__all__ = ["main"]


def cpu_seconds(server: StartedServer) -> dict[str, float]:
    """CPU seconds so far: the API side (the server process and its API workers, which vLLM
    titles ``VLLM::APIServer_N``) and the engine side (every other process it started)."""
    main = psutil.Process(server.process.pid)
    times = main.cpu_times()
    spent = {"api": times.user + times.system, "engine": 0.0}
    for child in main.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            side = "api" if "APIServer" in " ".join(child.cmdline()) else "engine"
            child_times = child.cpu_times()
            spent[side] += child_times.user + child_times.system
    return spent


async def _run(
    server: StartedServer, tasks: tuple[Any, ...], concurrency: int
) -> tuple[RunStats, dict[str, float]]:
    before = cpu_seconds(server)
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency)) as http:
        client = WrapserveClient(http, server.base_url)
        stats = await run_bounded([partial(client.invoke, task) for task in tasks], concurrency)
    after = cpu_seconds(server)
    return stats, {side: after[side] - before[side] for side in after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--classify", type=int, default=200)
    parser.add_argument("--extract", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "api_workers.json")
    args = parser.parse_args()
    config = ServerConfig.cpu_defaults()
    counts = (1, args.workers)
    workloads = {
        "classify": (classify_tasks(args.classify, seed=1), classify_tasks(args.classify, seed=2)),
        "extract": (extract_tasks(args.extract, seed=1), extract_tasks(args.extract, seed=2)),
    }
    work = Path(tempfile.mkdtemp(prefix="wrapserve-api-workers-"))
    results: dict[str, Any] = {"workers": list(counts), "concurrency": args.concurrency}
    with Servers(config, work) as servers:
        started = {
            count: servers.start_wrapserve(f"wrapserve-{count}", WRAPSERVE_API_WORKERS=str(count))
            for count in counts
        }
        for workload, rounds in workloads.items():
            runs: dict[int, list[RunStats]] = {count: [] for count in counts}
            cpu: dict[int, dict[str, float]] = {count: {"api": 0.0, "engine": 0.0} for count in counts}
            for number, tasks in enumerate(rounds):
                for count in counts if number % 2 == 0 else tuple(reversed(counts)):
                    stats, spent = asyncio.run(_run(started[count], tasks, args.concurrency))
                    runs[count].append(stats)
                    for side, seconds in spent.items():
                        cpu[count][side] += seconds
                    print(
                        f"[api-workers] {workload} round {number + 1} on {count} worker(s) done", flush=True
                    )
            figures: dict[str, Any] = {}
            for count in counts:
                merged = RunStats(
                    [r for run in runs[count] for r in run.results],
                    sum(run.wall_s for run in runs[count]),
                    args.concurrency,
                )
                summary = summarize(merged)
                summary.pop("latencies_ms", None)
                summary["cpu_ms_per_call"] = {
                    side: round(seconds * 1000 / summary["calls"], 2) for side, seconds in cpu[count].items()
                }
                figures[str(count)] = summary
            one, many = figures["1"], figures[str(args.workers)]
            results[workload] = {
                **figures,
                "calls_per_s_ratio": round(many["calls_per_s"] / one["calls_per_s"], 3),
            }
    shutil.rmtree(work, ignore_errors=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k not in ("classify", "extract")}))
    for workload in workloads:
        row = results[workload]
        print(
            workload,
            f"ratio {row['calls_per_s_ratio']}",
            {count: (row[str(count)]["calls_per_s"], row[str(count)]["cpu_ms_per_call"]) for count in counts},
        )


if __name__ == "__main__":
    main()
