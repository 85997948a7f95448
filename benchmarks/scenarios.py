"""The measurements of one run, each a pair taken side by side on a running server.

``Scenarios`` holds the clients (Wrapserve's wrapper routes, vLLM's server, Wrapserve's
OpenAI-compatible endpoint) and the run's sizes; each method measures one thing
and returns plain dicts for ``report.py``. Servers are driven one at a time (the other
idles), alternating within each pair, so on a 2-core box they do not compete for CPU.

Every timed run on a server gets texts no earlier run on that server sent (a fresh
variant of the workload): otherwise the second run of a pair would find its prompts in
the prefix cache and look faster for that reason alone.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from benchmarks.clients import CallResult, RunStats, VllmClient, WrapserveClient, run_bounded, summarize
from benchmarks.workloads import Task, Workload, sentiment_items
from server.structured.policy import GrammarLimits, plan_schema

__all__ = ["Scenarios", "Sizes", "first_call_ms", "ratio"]


@dataclass(frozen=True)
class Sizes:
    """How much of each thing to run (scaled down from the issue's 500/200/100 on CPU)."""

    classify: int
    extract: int
    report: int
    concurrency: int
    sweep: tuple[int, ...]
    steady_calls: int
    variant_share: float  # share of a workload rerun for on/off comparisons
    overhead_rounds: int  # (structured, unconstrained) pairs, every other one in reverse order
    classify_rounds: int = 1  # (Wrapserve, vLLM) classify runs, every other one in reverse order
    # On/off comparisons (speed-ups): rounds of every variant, every other round in reverse
    # order, and the fewest calls per run (structured vs unconstrained too; its rounds are
    # ``overhead_rounds``). With no more calls than calls in flight a run is one wave, and its
    # wall time is its slowest call's: one answer that runs to its token limit then decides
    # the figure.
    onoff_rounds: int = 1
    onoff_min_calls: int = 0


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


async def first_call_ms(call: Any) -> float:
    started = time.perf_counter()
    result: CallResult = await call()
    if not result.ok:
        raise RuntimeError(f"first call failed: {result.error}")
    return (time.perf_counter() - started) * 1000


def _regex(schema: dict[str, Any], whitespace: str | None) -> str:
    """The schema as outlines compiles it: compact (Wrapserve) or outlines' default whitespace."""
    from outlines.types import JsonSchema
    from outlines.types.dsl import to_regex

    prepared = plan_schema(schema, GrammarLimits()).outlines
    if prepared is None:
        raise ValueError("outlines cannot enforce this schema exactly")
    return str(to_regex(JsonSchema(prepared, whitespace_pattern=whitespace)))


CpuProbe = Callable[[], dict[str, float]]  # CPU seconds so far by process role ("api", "engine")


class Scenarios:
    def __init__(
        self,
        wrapserve: WrapserveClient,
        vllm: VllmClient,
        sizes: Sizes,
        cpu: dict[str, CpuProbe] | None = None,
        wrapserve_openai: VllmClient | None = None,
    ) -> None:
        self.ws = wrapserve
        self.vllm = vllm
        # Wrapserve's own OpenAI-compatible endpoint: free text and ignore_eos on its engine.
        self.ws_openai = wrapserve_openai
        self.sizes = sizes
        self.cpu = cpu or {}  # server name ("wrapserve", "vllm") -> its probe
        self._variants = itertools.count(1)

    async def _with_cpu(
        self, server: str, run: Awaitable[RunStats], spent: dict[str, defaultdict[str, float]]
    ) -> RunStats:
        """``run``, adding the CPU seconds the server's processes spent meanwhile to ``spent``."""
        probe = self.cpu.get(server)
        before = probe() if probe else {}
        stats = await run
        if probe:
            for role, seconds in probe().items():
                spent[server][role] += seconds - before.get(role, 0.0)
        return stats

    async def _ws_run(self, tasks: tuple[Task, ...], concurrency: int, **options: Any) -> RunStats:
        return await run_bounded([partial(self.ws.invoke, t, options or None) for t in tasks], concurrency)

    async def _vllm_run(self, tasks: tuple[Task, ...], concurrency: int, **kwargs: Any) -> RunStats:
        return await run_bounded([partial(self.vllm.chat, t, **kwargs) for t in tasks], concurrency)

    async def _ws(self, tasks: tuple[Task, ...], concurrency: int, **options: Any) -> dict[str, Any]:
        return summarize(await self._ws_run(tasks, concurrency, **options))

    async def _vllm(self, tasks: tuple[Task, ...], concurrency: int, **kwargs: Any) -> dict[str, Any]:
        return summarize(await self._vllm_run(tasks, concurrency, **kwargs))

    def _fresh(self, workload: Workload, count: int | None = None) -> tuple[Task, ...]:
        """Tasks like the workload's (``count`` of them, default a share) with new texts."""
        count = count or max(8, int(len(workload.tasks) * self.sizes.variant_share))
        return workload.variant(next(self._variants), count).tasks

    def _fresh_onoff(self, workload: Workload) -> tuple[Task, ...]:
        """New texts for one run of an on/off comparison."""
        share = max(8, int(len(workload.tasks) * self.sizes.variant_share))
        return self._fresh(workload, max(share, self.sizes.onoff_min_calls))

    async def _on_off(
        self,
        workload: Workload,
        variants: Sequence[str],
        run: Callable[[str, tuple[Task, ...]], Awaitable[RunStats]],
    ) -> dict[str, Any]:
        """Each variant run ``Sizes.onoff_rounds`` times, every other round in reverse order,
        each run on fresh texts: pooled summaries by variant, and each round's calls/s."""
        runs: dict[str, list[RunStats]] = {variant: [] for variant in variants}
        for number in range(self.sizes.onoff_rounds):
            for variant in reversed(variants) if number % 2 else variants:
                runs[variant].append(await run(variant, self._fresh_onoff(workload)))
        return {
            "runs": {variant: summarize(_pooled(stats)) for variant, stats in runs.items()},
            "round_calls_per_s": {
                variant: [summarize(one)["calls_per_s"] for one in stats] for variant, stats in runs.items()
            },
        }

    async def warm(self, workload: Workload) -> None:
        """One call per distinct schema on both servers, so per-call grammars are built."""
        warm = _one_per_schema(self._fresh(workload))
        await self._ws(warm, 8)
        await self._vllm(warm, 8)

    async def compare(self, workload: Workload, rounds: int = 1) -> dict[str, Any]:
        """The workload on Wrapserve (defaults) and on vLLM's server with response_format.

        Round 1 runs the workload's texts, Wrapserve first; each later round runs a fresh
        variant of the same size, in the other order than the round before, so a drift of
        the shared box does not always fall on the same server. Figures pool the rounds
        (all calls over the summed wall time); each round's ratio is kept."""
        c = self.sizes.concurrency
        ours: list[RunStats] = []
        theirs: list[RunStats] = []
        spent: dict[str, defaultdict[str, float]] = {
            "wrapserve": defaultdict(float),
            "vllm": defaultdict(float),
        }
        for number in range(rounds):
            tasks = workload.tasks if number == 0 else self._fresh(workload, len(workload.tasks))
            stats: dict[str, RunStats] = {}
            for server in ("vllm", "wrapserve") if number % 2 else ("wrapserve", "vllm"):
                run = self._ws_run(tasks, c) if server == "wrapserve" else self._vllm_run(tasks, c)
                stats[server] = await self._with_cpu(server, run, spent)
            ours.append(stats["wrapserve"])
            theirs.append(stats["vllm"])
        wrapserve, vllm = summarize(_pooled(ours)), summarize(_pooled(theirs))
        calls = {"wrapserve": wrapserve["calls"], "vllm": vllm["calls"]}
        cpu = {
            server: {role: round(seconds * 1000 / calls[server], 2) for role, seconds in sorted(used.items())}
            for server, used in spent.items()
            if used
        }
        return {
            **({"cpu_ms_per_call": cpu} if cpu else {}),
            "wrapserve": wrapserve,
            "vllm": vllm,
            "ratio_vs_vllm": ratio(wrapserve["calls_per_s"], vllm["calls_per_s"]),
            "validity_delta": round(wrapserve["valid_share"] - vllm["valid_share"], 4),
            "rounds": rounds,
            "round_ratios": [
                ratio(summarize(a)["calls_per_s"], summarize(b)["calls_per_s"])
                for a, b in zip(ours, theirs, strict=True)
            ],
        }

    async def decode_modes(self, workload: Workload, modes: tuple[str, ...]) -> dict[str, Any]:
        """Wrapserve in each decoding mode (speed-ups on/off): calls of the same kind, each
        run on texts of its own (fresh variants of the workload), in rounds."""
        for mode in modes:  # each mode's grammars (e.g. the regex after a forced prefix) built first
            await self._ws(_one_per_schema(self._fresh(workload)), 8, decode=mode)
        measured = await self._on_off(
            workload, modes, lambda mode, tasks: self._ws_run(tasks, self.sizes.concurrency, decode=mode)
        )
        runs = measured["runs"]
        base = runs[modes[-1]]["calls_per_s"]
        return {
            **measured,
            "ratios_vs_" + modes[-1]: {m: ratio(r["calls_per_s"], base) for m, r in runs.items()},
            "rounds": self.sizes.onoff_rounds,
        }

    async def batch_vs_single(self, workload: Workload) -> dict[str, Any]:
        """/batch (every item submitted to the engine at once) vs one call at a time."""
        count = max(8, min(self.sizes.concurrency, int(len(workload.tasks) * self.sizes.variant_share)))
        tasks = self._fresh(workload, count)
        started = time.perf_counter()
        results = await self.ws.batch(tasks)
        wall = time.perf_counter() - started
        batch = {
            "calls": len(tasks),
            "wall_s": round(wall, 3),
            "calls_per_s": round(len(tasks) / wall, 3),
            "valid_share": round(sum(r.valid for r in results) / len(results), 4),
        }
        single = await self._ws(self._fresh(workload, count), 1)
        return {
            "batch": batch,
            "sequential": single,
            "ratio": ratio(batch["calls_per_s"], single["calls_per_s"]),
        }

    async def _warm_regexes(self, tasks: tuple[Task, ...], regexes: dict[str, str]) -> None:
        """vLLM builds a grammar index on a regex's first use: do that before timing."""
        for task in _one_per_schema(tasks):
            await self.vllm.chat(task, structured="regex", regex=regexes[repr(task.schema())], max_tokens=1)

    async def structured_overhead(self, workload: Workload) -> dict[str, Any]:
        """The grammar's cost per output token, alone, on Wrapserve's engine. Calls of the same
        kind through Wrapserve's OpenAI-compatible endpoint: constrained by the schema (compiled
        to Wrapserve's compact grammar, as a wrapper's is), then unconstrained with the i-th
        call held to exactly the i-th constrained answer's length (``ignore_eos``), so both
        decode the same tokens per call in the same batch shape and differ only by the
        grammar. The pair is repeated ``Sizes.overhead_rounds`` times, every other round
        unconstrained first (held to the previous constrained run's lengths), so a drift of
        the shared box during a round does not always fall on the same side; each run on
        fresh texts. The ratio pools the rounds (structured / unconstrained output tokens
        per second), and each round's own ratio is kept to show the spread. vLLM's server,
        with its own json_schema grammar and stock vLLM, is measured the same way for comparison."""
        if self.ws_openai is None:
            raise ValueError("structured_overhead needs a client for Wrapserve's OpenAI-compatible endpoint")
        ours = await self._overhead_rounds(self.ws_openai, workload)
        theirs = await self._overhead_rounds(self.vllm, workload)
        return {
            "structured_compact": ours["structured"],
            "unconstrained_same_lengths": ours["unconstrained"],
            "structured_vllm_json_schema": theirs["structured"],
            "unconstrained_same_lengths_as_json_schema": theirs["unconstrained"],
            "ratio": ours["ratio"],
            "round_ratios": ours["round_ratios"],
            "ratio_vllm_json_schema": theirs["ratio"],
            "round_ratios_vllm_json_schema": theirs["round_ratios"],
            "rounds": self.sizes.overhead_rounds,
            "engine": "wrapserve (OpenAI-compatible endpoint); vllm_json_schema on vLLM's server",
            "method": "rounds of (constrained, unconstrained at a constrained run's per-call lengths via "
            "ignore_eos), every other round in reverse order, fresh texts each run; ratio pooled over rounds",
        }

    async def _overhead_rounds(self, client: VllmClient, workload: Workload) -> dict[str, Any]:
        # Each server builds a schema's grammar on its first use: not in a timed run.
        for task in _one_per_schema(self._fresh(workload)):
            await client.chat(task, max_tokens=1)
        constrained_runs: list[RunStats] = []
        free_runs: list[RunStats] = []
        for round_number in range(self.sizes.overhead_rounds):
            calls = [partial(client.chat, t) for t in self._fresh_onoff(workload)]
            if round_number % 2:  # unconstrained first, at the previous round's lengths
                free_runs.append(
                    await self._length_matched(client, self._fresh_onoff(workload), constrained_runs[-1])
                )
                constrained_runs.append(await run_bounded(calls, self.sizes.concurrency))
            else:
                constrained_runs.append(await run_bounded(calls, self.sizes.concurrency))
                free_runs.append(
                    await self._length_matched(client, self._fresh_onoff(workload), constrained_runs[-1])
                )
        structured_all, free_all = summarize(_pooled(constrained_runs)), summarize(_pooled(free_runs))
        return {
            "structured": structured_all,
            "unconstrained": free_all,
            "ratio": ratio(structured_all["output_tokens_per_s"], free_all["output_tokens_per_s"]),
            "round_ratios": [
                ratio(summarize(a)["output_tokens_per_s"], summarize(b)["output_tokens_per_s"])
                for a, b in zip(constrained_runs, free_runs, strict=True)
            ],
        }

    async def _length_matched(
        self, client: VllmClient, tasks: tuple[Task, ...], constrained: RunStats
    ) -> RunStats:
        """Unconstrained calls on new texts of the same kind, the i-th held to the i-th
        constrained answer's length (new texts: the constrained run's prompts are cached)."""
        lengths = [max(1, r.output_tokens) for r in constrained.results]
        return await run_bounded(
            [
                partial(client.chat, t, structured="none", max_tokens=n, ignore_eos=True)
                for t, n in zip(tasks, lengths, strict=True)
            ],
            self.sizes.concurrency,
        )

    async def compact_json(self, workload: Workload) -> dict[str, Any]:
        """Compact grammar (no free whitespace) vs outlines' default whitespace, same engine."""
        whitespace = {"compact": "", "free_whitespace": None}

        def regexes(name: str, tasks: tuple[Task, ...]) -> dict[str, str]:
            return {repr(t.schema()): _regex(t.schema(), whitespace[name]) for t in _one_per_schema(tasks)}

        for name in whitespace:  # vLLM builds a regex's index on first use: not in a timed run
            warm = self._fresh(workload)
            await self._warm_regexes(warm, regexes(name, warm))

        async def run(name: str, tasks: tuple[Task, ...]) -> RunStats:
            regex = regexes(name, tasks)
            calls = [
                partial(self.vllm.chat, t, structured="regex", regex=regex[repr(t.schema())]) for t in tasks
            ]
            return await run_bounded(calls, self.sizes.concurrency)

        measured = await self._on_off(workload, tuple(whitespace), run)
        runs = measured["runs"]
        return {
            **measured,
            "ratio": ratio(runs["compact"]["calls_per_s"], runs["free_whitespace"]["calls_per_s"]),
            "output_tokens_ratio": ratio(
                runs["compact"]["output_tokens_per_call"], runs["free_whitespace"]["output_tokens_per_call"]
            ),
            "rounds": self.sizes.onoff_rounds,
        }

    async def prefix_layout(self, workload: Workload) -> dict[str, Any]:
        """On vLLM's server: the wrapper's static-first messages vs the same words with the
        text first, and the system turn padded to whole KV blocks (as Wrapserve's engine
        pads it) vs not. Also what vLLM's server gets from the padding Wrapserve uses."""
        measured = await self._on_off(
            workload,
            ("static-first", "dynamic-first", "block-aligned"),
            lambda layout, tasks: self._vllm_run(tasks, self.sizes.concurrency, layout=layout),
        )
        runs = measured["runs"]
        return {
            **measured,
            "ratio": ratio(runs["static-first"]["calls_per_s"], runs["dynamic-first"]["calls_per_s"]),
            "aligned_ratio": ratio(runs["block-aligned"]["calls_per_s"], runs["static-first"]["calls_per_s"]),
            "rounds": self.sizes.onoff_rounds,
        }

    async def sweep(self, workload: Workload) -> dict[str, Any]:
        """Throughput vs concurrency on both servers."""
        points: dict[str, list[dict[str, Any]]] = {"wrapserve": [], "vllm": []}
        for concurrency in self.sizes.sweep:
            tasks = self._fresh(workload, min(len(workload.tasks), max(12, 4 * concurrency)))
            ws = await self._ws(tasks, concurrency)
            vl = await self._vllm(tasks, concurrency)
            for name, run in (("wrapserve", ws), ("vllm", vl)):
                points[name].append(
                    {"concurrency": concurrency, "calls_per_s": run["calls_per_s"], "p50_ms": run["p50_ms"]}
                )
        return points

    async def steady_state(self, first_ws: dict[str, float], first_vllm: float) -> dict[str, Any]:
        """First call after start (already measured) vs the median of later sequential calls."""
        n = self.sizes.steady_calls
        sentiment = sentiment_items(n)  # vLLM's server gets the same texts: its cache is its own
        out: dict[str, Any] = {}
        for name, first in first_ws.items():
            tasks = sentiment if name == "sentiment" else _entities(n)
            run = await self._ws(tasks, 1)
            steady = round(statistics.median(run["latencies_ms"]), 1)
            out[name] = {"first_ms": round(first, 1), "steady_p50_ms": steady, "ratio": ratio(first, steady)}
        run = await self._vllm(sentiment, 1)
        steady = round(statistics.median(run["latencies_ms"]), 1)
        out["vllm_sentiment"] = {
            "first_ms": round(first_vllm, 1),
            "steady_p50_ms": steady,
            "ratio": ratio(first_vllm, steady),
        }
        return out


def _pooled(runs: list[RunStats]) -> RunStats:
    """Several runs as one: all their calls over the sum of their wall times."""
    return RunStats(
        results=[r for run in runs for r in run.results],
        wall_s=sum(run.wall_s for run in runs),
        concurrency=runs[0].concurrency,
    )


def _one_per_schema(tasks: tuple[Task, ...]) -> tuple[Task, ...]:
    seen: dict[str, Task] = {}
    for task in tasks:
        seen.setdefault(repr(task.schema()), task)
    return tuple(seen.values())


def _entities(count: int) -> tuple[Task, ...]:
    from benchmarks.workloads import extract_tasks

    return extract_tasks(count, seed=11)


def run_sync(coroutine: Any) -> Any:
    return asyncio.run(coroutine)
