"""The benchmark's bookkeeping, without servers: pooling runs, headline keys, the report."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from benchmarks.clients import CallResult, RunStats, summarize
from benchmarks.report import headline, markdown
from benchmarks.scenarios import Scenarios, Sizes, _pooled
from benchmarks.workloads import Task, build_workload

LATEST = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "latest.json"


def _run(tokens: list[int], wall_s: float) -> RunStats:
    results = [CallResult(ok=True, valid=True, latency_s=wall_s, output_tokens=n) for n in tokens]
    return RunStats(results=results, wall_s=wall_s, concurrency=4)


def test_pooled_runs_divide_all_tokens_by_all_wall_time() -> None:
    pooled = summarize(_pooled([_run([10, 20], 2.0), _run([30], 4.0)]))
    assert pooled["calls"] == 3
    assert pooled["output_tokens_per_s"] == 10.0  # 60 tokens over 6 s, not the mean of 15 and 7.5
    assert pooled["calls_per_s"] == 0.5


def test_the_committed_results_carry_the_issues_keys_and_render() -> None:
    results = json.loads(LATEST.read_text())
    flat = headline(results)
    for key in ("structured_overhead_ratio", "first_call_ratio", "compile_p99_ms"):  # top-level, as named
        assert results[key] is not None and results[key] == flat[key], key
    assert results["classify"]["ratio_vs_vllm"] == flat["classify.ratio_vs_vllm"] is not None
    text = markdown(results)
    assert str(flat["classify.ratio_vs_vllm"]) in text
    assert str(flat["structured_overhead_ratio"]) in text


def test_the_report_shows_each_starts_first_call_and_every_ratio() -> None:
    results = json.loads(LATEST.read_text())
    results["first_call"]["sentiment"]["first_ms_per_start"] = [111.1, 222.2, 333.3]
    text = markdown(results)
    assert "| 111.1, 222.2, 333.3 |" in text
    layout = results["speedups"]["prefix_cache_layout"]
    assert f'"aligned_ratio": {layout["aligned_ratio"]}' in text  # not only keys named ratio*


def test_the_report_says_whose_grammar_plugins_each_server_ran() -> None:
    results = json.loads(LATEST.read_text())
    results["meta"].update(vllm_fast_cpu_masks=False, wrapserve_fast_cpu_masks=True)
    assert "Wrapserve's plugin in Wrapserve, stock vLLM's in vLLM's server" in markdown(results)
    results["meta"].update(vllm_fast_cpu_masks=True, wrapserve_fast_cpu_masks=False)
    assert "stock vLLM's in Wrapserve, Wrapserve's plugin in vLLM's server" in markdown(results)
    results["meta"].update(vllm_fast_grammar_advance=False, wrapserve_fast_grammar_advance=True)
    assert (
        "Outlines guide advance: Wrapserve's plugin in Wrapserve, stock vLLM's in vLLM's server"
        in markdown(results)
    )


def test_the_report_shows_each_rounds_ratio_of_a_pooled_comparison() -> None:
    results = json.loads(LATEST.read_text())
    results["classify"]["round_ratios"] = [1.951, 1.785]
    assert "(rounds [1.951, 1.785], pooled)" in markdown(results)
    results["classify"]["round_ratios"] = [1.951]  # one round: nothing was pooled
    assert "pooled" not in markdown(results).split("classify: ratio")[1].split("\n")[0]


class _CountingClient:
    """A client stand-in that answers at once and books CPU time on its server's meter,
    as a real server's processes would while serving the call."""

    def __init__(self, meter: dict[str, float], api_ms: float, engine_ms: float) -> None:
        self.meter, self.api_ms, self.engine_ms = meter, api_ms, engine_ms

    async def _answer(self) -> CallResult:
        self.meter["api"] += self.api_ms / 1000
        self.meter["engine"] += self.engine_ms / 1000
        return CallResult(ok=True, valid=True, latency_s=0.001, output_tokens=1)

    async def invoke(self, task: Task, options: dict[str, Any] | None = None) -> CallResult:
        return await self._answer()

    async def chat(self, task: Task, **kwargs: Any) -> CallResult:
        return await self._answer()


def test_a_comparison_books_each_servers_cpu_time_per_call_over_all_rounds() -> None:
    meters = {"wrapserve": {"api": 0.0, "engine": 0.0}, "vllm": {"api": 0.0, "engine": 0.0}}
    ws = _CountingClient(meters["wrapserve"], api_ms=2.0, engine_ms=10.0)
    vllm = _CountingClient(meters["vllm"], api_ms=3.0, engine_ms=25.0)
    sizes = Sizes(4, 4, 4, concurrency=2, sweep=(), steady_calls=1, variant_share=0.5, overhead_rounds=2)
    probes = {name: (lambda meter=meter: dict(meter)) for name, meter in meters.items()}
    scenarios = Scenarios(ws, vllm, sizes, cpu=probes)  # type: ignore[arg-type]
    meters["vllm"]["engine"] += 99.0  # spent before the comparison: not booked to it
    result = asyncio.run(scenarios.compare(build_workload("classify", 6), rounds=2))  # both orders
    assert result["cpu_ms_per_call"] == {
        "wrapserve": {"api": 2.0, "engine": 10.0},
        "vllm": {"api": 3.0, "engine": 25.0},
    }
    text = markdown({"classify": result})
    assert "| classify | vllm | 3.0 | 25.0 |" in text


class _RecordingClient:
    """Answers at once and records each call's decode mode and text, in call order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def invoke(self, task: Task, options: dict[str, Any] | None = None) -> CallResult:
        self.calls.append(((options or {}).get("decode", "auto"), task.input["text"]))
        return CallResult(ok=True, valid=True, latency_s=0.001, output_tokens=1)


def test_on_off_runs_alternate_their_order_by_round_on_fresh_texts_of_several_waves() -> None:
    ws = _RecordingClient()
    sizes = Sizes(6, 4, 4, 2, (), 1, 0.5, 2, onoff_rounds=2, onoff_min_calls=10)
    scenarios = Scenarios(ws, None, sizes)  # type: ignore[arg-type]
    result = asyncio.run(scenarios.decode_modes(build_workload("classify", 6), ("score", "plain")))
    timed = ws.calls[-40:]  # after one warm-up call per mode and schema
    runs = [timed[start : start + 10] for start in range(0, 40, 10)]
    assert [{mode for mode, _ in run} for run in runs] == [{"score"}, {"plain"}, {"plain"}, {"score"}]
    texts = [text for _, text in timed]
    assert len(set(texts)) == 40  # every run on texts no other run sent
    assert result["runs"]["score"]["calls"] == 20  # pooled over both rounds
    assert len(result["round_calls_per_s"]["plain"]) == 2
    assert result["ratios_vs_plain"]["plain"] == 1.0
    assert "pooled over 2 rounds" in markdown({"speedups": {"choice_scoring": result}})
