"""Which of vLLM's grammar backends Wrapserve should run: its wrappers on each, side by side.

Two Wrapserve servers, identical but for ``WRAPSERVE_STRUCTURED_OUTPUT_BACKEND`` (guidance
and outlines), both up at once (the one not measured idles); each workload runs on one,
then the other, then again in the other order, and the figures pool the rounds. The
ratios are guidance / outlines: calls/s (higher is better for guidance), schema-valid
share. Real-schema coverage and compile times, the other half of the choice, come from
``benchmarks.run`` (``schema_coverage``, ``compile``).

    python -m benchmarks.backend_choice [--classify 120] [--extract 40] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from benchmarks.clients import RunStats, WrapserveClient, run_bounded, summarize
from benchmarks.servers import ServerConfig, Servers, StartedServer
from benchmarks.workloads import classify_tasks, extract_tasks

__all__ = ["main"]

BACKENDS = ("guidance", "outlines")


async def _run(server: StartedServer, tasks: tuple[Any, ...], concurrency: int) -> RunStats:
    async with httpx.AsyncClient(timeout=600) as http:
        client = WrapserveClient(http, server.base_url)
        return await run_bounded([partial(client.invoke, task) for task in tasks], concurrency)


def _pooled(runs: list[RunStats]) -> dict[str, Any]:
    merged = RunStats(
        [r for run in runs for r in run.results], sum(run.wall_s for run in runs), runs[0].concurrency
    )
    summary = summarize(merged)
    summary.pop("latencies_ms", None)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classify", type=int, default=120)
    parser.add_argument("--extract", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "backend_choice.json")
    args = parser.parse_args()
    config = ServerConfig.cpu_defaults()
    workloads = {
        "classify": (classify_tasks(args.classify, seed=1), classify_tasks(args.classify, seed=2)),
        "extract": (extract_tasks(args.extract, seed=1), extract_tasks(args.extract, seed=2)),
    }
    work = Path(tempfile.mkdtemp(prefix="wrapserve-backends-"))
    results: dict[str, Any] = {"backends": list(BACKENDS), "concurrency": args.concurrency}
    with Servers(config, work) as servers:
        started = {
            name: servers.start_wrapserve(f"wrapserve-{name}", WRAPSERVE_STRUCTURED_OUTPUT_BACKEND=name)
            for name in BACKENDS
        }
        results["startup_s"] = {name: round(server.startup_s, 1) for name, server in started.items()}
        for workload, rounds in workloads.items():
            runs: dict[str, list[RunStats]] = {name: [] for name in BACKENDS}
            for number, tasks in enumerate(rounds):
                order = BACKENDS if number % 2 == 0 else tuple(reversed(BACKENDS))
                for name in order:
                    runs[name].append(asyncio.run(_run(started[name], tasks, args.concurrency)))
                    print(f"[backends] {workload} round {number + 1} on {name} done", flush=True)
            pooled = {name: _pooled(stats) for name, stats in runs.items()}
            results[workload] = {
                **pooled,
                "calls_per_s_ratio": round(
                    pooled["guidance"]["calls_per_s"] / pooled["outlines"]["calls_per_s"], 3
                ),
                "rounds_ratio": [
                    round(
                        (len(g.results) / g.wall_s) / (len(o.results) / o.wall_s),
                        3,
                    )
                    for g, o in zip(runs["guidance"], runs["outlines"], strict=True)
                ],
            }
    shutil.rmtree(work, ignore_errors=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(
        json.dumps(
            {k: v.get("calls_per_s_ratio") for k, v in results.items() if isinstance(v, dict)}, indent=1
        )
    )


if __name__ == "__main__":
    main()
