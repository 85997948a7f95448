"""The benchmark's bookkeeping, without servers: pooling runs, headline keys, the report."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.clients import CallResult, RunStats, summarize
from benchmarks.report import headline, markdown
from benchmarks.scenarios import _pooled

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


def test_the_report_shows_each_rounds_ratio_of_a_pooled_comparison() -> None:
    results = json.loads(LATEST.read_text())
    results["classify"]["round_ratios"] = [1.951, 1.785]
    assert "(rounds [1.951, 1.785], pooled)" in markdown(results)
    results["classify"]["round_ratios"] = [1.951]  # one round: nothing was pooled
    assert "pooled" not in markdown(results).split("classify: ratio")[1].split("\n")[0]
