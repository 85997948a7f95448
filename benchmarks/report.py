"""Results out: ``latest.json`` (headline keys at the top level), a Markdown table, PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["headline", "markdown", "sweep_ratios", "write"]

WORKLOADS = ("classify", "extract", "report")
TARGETS = {
    "classify.ratio_vs_vllm": ">= 2.0 (at equal or better validity)",
    "structured_overhead_ratio": ">= 0.95",
    "first_call_ratio": "<= 1.5",
    "compile_coverage": ">= 0.95 (compiled within the budget or rejected with a clear error)",
    "schema_coverage.silent_misses": "0",
}


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """The figures the issue names, flattened; None where a part was not run."""
    firsts = [v["ratio"] for k, v in (results.get("first_call") or {}).items() if not k.startswith("vllm")]
    outlines = _get(results, "compile", "backends", "wrapserve") or {}
    return {
        "classify.ratio_vs_vllm": _get(results, "classify", "ratio_vs_vllm"),
        "classify.validity_delta": _get(results, "classify", "validity_delta"),
        "classify.ratio_by_concurrency": sweep_ratios(results) or None,
        "extract.ratio_vs_vllm": _get(results, "extract", "ratio_vs_vllm"),
        "report.ratio_vs_vllm": _get(results, "report", "ratio_vs_vllm"),
        "structured_overhead_ratio": _get(results, "structured_overhead", "ratio"),
        "first_call_ratio": max((r for r in firsts if r is not None), default=None),
        "startup_ratio_vs_vllm": _get(results, "startup", "ratio"),
        "compile_p99_ms": outlines.get("p99_ms"),
        "compile_coverage": outlines.get("coverage"),
        "schema_coverage.wrapserve": _get(results, "schema_coverage", "wrapserve", "coverage"),
        "schema_coverage.vllm_default": _get(results, "schema_coverage", "vllm_default", "coverage"),
        "schema_coverage.vllm_guidance": _get(results, "schema_coverage", "vllm_guidance", "coverage"),
        "schema_coverage.silent_misses": _get(results, "schema_coverage", "silent_misses", "wrapserve"),
    }


def sweep_ratios(results: dict[str, Any]) -> dict[str, float | None]:
    """Classify calls/s, Wrapserve / vLLM, at each concurrency of the sweep."""
    sweep = results.get("sweep") or {}
    vllm = {p["concurrency"]: p["calls_per_s"] for p in sweep.get("vllm", [])}
    return {
        str(p["concurrency"]): round(p["calls_per_s"] / vllm[p["concurrency"]], 3)
        if vllm.get(p["concurrency"])
        else None
        for p in sweep.get("wrapserve", [])
    }


def _row(name: str, run: dict[str, Any] | None) -> str:
    if not run:
        return f"| {name} | - | - | - | - | - |"
    cells = [f"{run['calls_per_s']:.2f}"]
    cells += [f"{run[key]:.0f}" if key in run else "-" for key in ("p50_ms", "p99_ms")]
    cells.append(f"{run['output_tokens_per_call']:.1f}" if "output_tokens_per_call" in run else "-")
    cells.append(f"{run['valid_share']:.1%}" if "valid_share" in run else "-")
    return f"| {name} | {' | '.join(cells)} |"


def _cpu_lines(results: dict[str, Any]) -> list[str]:
    """CPU time per call by process: where each server spends its work (the API process
    serves HTTP, tokenizes and builds requests; the engine processes schedule and compute)."""
    rows = [
        f"| {name} | {server} | {cpu.get('api', '-')} | {cpu.get('engine', '-')} |"
        for name in WORKLOADS
        for server, cpu in (_get(results, name, "cpu_ms_per_call") or {}).items()
    ]
    if not rows:
        return []
    return [
        "",
        "## CPU time per call by process (same runs as above)",
        "",
        "| workload | server | API process ms | engine processes ms |",
        "|---|---|---|---|",
        *rows,
    ]


def _overhead_engine_note(overhead: dict[str, Any]) -> str:
    if "engine" in overhead:
        return (
            "compact: Wrapserve's grammar on Wrapserve's engine (its OpenAI-compatible endpoint); "
            "json_schema: vLLM's own grammar on vLLM's server."
        )
    # Runs before the pair moved to Wrapserve's engine measured both on vLLM's server.
    return "Both on vLLM's server (compact: Wrapserve's grammar sent as a regex)."


# Wrapserve's engine plugins, as run.py records them in meta: ("vllm_" / "wrapserve_") + key.
_PLUGINS = (("CPU grammar masks", "fast_cpu_masks"), ("Outlines guide advance", "fast_grammar_advance"))


def _plugin_note(meta: dict[str, Any]) -> str:
    whose = {True: "Wrapserve's plugin", False: "stock vLLM's"}
    return " ".join(
        f"{label}: {whose[meta.get('wrapserve_' + key, True)]} in Wrapserve, "
        f"{whose[meta['vllm_' + key]]} in vLLM's server."
        for label, key in _PLUGINS
        if "vllm_" + key in meta  # runs from before a plugin did not record it
    )


def markdown(results: dict[str, Any]) -> str:
    meta = results.get("meta", {})
    lines = [
        f"# Benchmark results ({meta.get('mode')}, {meta.get('date')})",
        "",
        f"Command: `{meta.get('command')}`; model {meta.get('model')}, backend {meta.get('backend')}; "
        f"sizes {json.dumps(meta.get('sizes'))} (issue scale {json.dumps(meta.get('issue_scale'))}).",
        f"Engine options of both servers: {json.dumps(meta.get('engine'))}. " + _plugin_note(meta),
        "",
        "## Workloads: Wrapserve vs vLLM's own OpenAI server (same model, backend, prompts, schemas)",
        "",
        "| run | calls/s | p50 ms | p99 ms | output tokens/call | schema-valid |",
        "|---|---|---|---|---|---|",
    ]
    for name in WORKLOADS:
        if name in results:
            lines.append(_row(f"{name}: Wrapserve", results[name]["wrapserve"]))
            lines.append(_row(f"{name}: vLLM", results[name]["vllm"]))
            rounds = results[name].get("round_ratios", [])
            spread = f" (rounds {rounds}, pooled)" if len(rounds) > 1 else ""
            lines.append(
                f"| **{name}: ratio Wrapserve/vLLM** | **{results[name]['ratio_vs_vllm']}**{spread} | | | | |"
            )
    lines += _cpu_lines(results)
    speedups = results.get("speedups", {})
    if speedups:
        lines += [
            "",
            "## Speed-ups on/off (same server, calls of the same kind, fresh texts per run)",
            "",
            "| run | calls/s | p50 ms | p99 ms | output tokens/call | schema-valid |",
            "|---|---|---|---|---|---|",
        ]
        for name, block in speedups.items():
            runs = block.get("runs") or {
                k: v for k, v in block.items() if isinstance(v, dict) and "calls_per_s" in v
            }
            for variant, run in runs.items():
                lines.append(_row(f"{name}: {variant}", run))
            ratios = {k: v for k, v in block.items() if "ratio" in k and v is not None}
            each_round = block.get("round_calls_per_s", {})
            spread = (
                f" pooled over {block['rounds']} rounds; calls/s by round {json.dumps(each_round)}"
                if block.get("rounds", 1) > 1
                else ""
            )
            lines.append(f"| {name}: ratios | {json.dumps(ratios)}{spread} | | | | |")
    overhead = results.get("structured_overhead")
    if overhead:
        lines += [
            "",
            "## Structured vs unconstrained (same prompts, same output lengths, on one engine)",
            "",
            _overhead_engine_note(overhead),
            "",
            "| run | calls/s | p50 ms | p99 ms | output tokens/call | schema-valid |",
            "|---|---|---|---|---|---|",
        ]
        for variant in (
            "structured_compact",
            "unconstrained_same_lengths",
            "structured_vllm_json_schema",
            "unconstrained_same_lengths_as_json_schema",
        ):
            lines.append(_row(variant, overhead.get(variant)))
        lines.append(
            f"| output tokens/s ratio over {overhead.get('rounds', 1)} rounds: compact "
            f"{overhead.get('ratio')} (rounds {overhead.get('round_ratios')}), vLLM json_schema "
            f"{overhead.get('ratio_vllm_json_schema')} (rounds {overhead.get('round_ratios_vllm_json_schema')})"
            " | | | | | |"
        )
    if "first_call" in results:
        lines += [
            "",
            "## First call after start vs steady state",
            "",
            "| wrapper | first ms (median over starts) | each start's first ms | steady p50 ms | ratio |",
            "|---|---|---|---|---|",
        ]
        for name, block in results["first_call"].items():
            each = ", ".join(str(ms) for ms in block.get("first_ms_per_start", [block["first_ms"]]))
            lines.append(
                f"| {name} | {block['first_ms']} | {each} | {block['steady_p50_ms']} | {block['ratio']} |"
            )
    if results.get("sweep"):
        lines += [
            "",
            "## Classify throughput vs concurrency (fresh texts per point)",
            "",
            "| concurrent calls | Wrapserve calls/s | vLLM calls/s | ratio | Wrapserve p50 ms | vLLM p50 ms |",
            "|---|---|---|---|---|---|",
        ]
        ratios = sweep_ratios(results)
        for ws, vl in zip(results["sweep"]["wrapserve"], results["sweep"]["vllm"], strict=True):
            lines.append(
                f"| {ws['concurrency']} | {ws['calls_per_s']} | {vl['calls_per_s']} | "
                f"{ratios[str(ws['concurrency'])]} | {ws['p50_ms']} | {vl['p50_ms']} |"
            )
    if "startup" in results:
        s = results["startup"]
        lines += [
            "",
            f"Start-up (launch to healthy): Wrapserve {s['wrapserve_s']} s, vLLM {s['vllm_s']} s, ratio {s['ratio']}.",
        ]
    compile_results = results.get("compile")
    if compile_results:
        lines += [
            "",
            f"## Grammar compile time per schema ({compile_results['sample']} maskbench schemas, {compile_results['timeout_s']} s budget)",
            "",
            "| backend | compiled | rejected | timeout | error/crash | coverage | p50 ms | p99 ms |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for backend, b in compile_results["backends"].items():
            if "unavailable" in b:
                lines.append(f"| {backend} | unavailable: {b['unavailable']} | | | | | | |")
                continue
            lines.append(
                f"| {backend} | {b['compiled']} | {b['rejected']} | {b['timeout']} | {b['error'] + b['crashed']} | "
                f"{b['coverage']:.1%} | {b['p50_ms']} | {b['p99_ms']} |"
            )
    coverage = results.get("schema_coverage")
    if coverage:
        meta = coverage.get("meta", {})
        servers = [name for name in ("wrapserve", "vllm_default", "vllm_guidance") if name in coverage]
        lines += [
            "",
            f"## Schema coverage ({meta.get('schemas')} maskbench schemas, max_tokens {meta.get('max_tokens')})",
            "",
            "| server | set | valid | refused | truncated | invalid 200 | error | coverage |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name in servers:
            for set_name, b in [("all", coverage[name]), *coverage[name]["by_set"].items()]:
                lines.append(
                    f"| {name} | {set_name} | {b['valid']} | {b['refused']} | {b['truncated']} | "
                    f"{b['invalid']} | {b['error']} | {b['coverage']:.1%} |"
                )
        if ratio := coverage.get("ratio_to_best_vllm"):
            lines += [
                "",
                f"Wrapserve / best vLLM backend ({ratio['best']}): {ratio['overall']} overall, by set {ratio['by_set']}.",
            ]
    lines += ["", "## Headline", "", "| figure | measured | target |", "|---|---|---|"]
    for key, value in headline(results).items():
        lines.append(f"| {key} | {value} | {TARGETS.get(key, '')} |")
    return "\n".join(lines) + "\n"


def _plots(results: dict[str, Any], out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    if "sweep" in results:
        figure, axis = plt.subplots(figsize=(6, 4))
        for name, points in results["sweep"].items():
            axis.plot(
                [p["concurrency"] for p in points], [p["calls_per_s"] for p in points], marker="o", label=name
            )
        axis.set(
            xlabel="concurrent calls",
            ylabel="calls/s",
            title="classify: throughput vs concurrency",
            xscale="log",
        )
        axis.legend()
        figure.tight_layout()
        figure.savefig(out / "throughput_vs_concurrency.png", dpi=100)
        plt.close(figure)
        written.append("throughput_vs_concurrency.png")
    series = {
        f"{name}\n{server}": results[name][server]["latencies_ms"]
        for name in WORKLOADS
        if name in results
        for server in ("wrapserve", "vllm")
    }
    if series:
        figure, axis = plt.subplots(figsize=(8, 4))
        axis.boxplot(list(series.values()), tick_labels=list(series.keys()), showfliers=True)
        axis.set(ylabel="latency ms", yscale="log", title="latency distribution per workload")
        figure.tight_layout()
        figure.savefig(out / "latency_distributions.png", dpi=100)
        plt.close(figure)
        written.append("latency_distributions.png")
    return written


def write(results: dict[str, Any], out: Path) -> None:
    """``latest.json`` with the headline keys at the top level, ``latest.md``, and the plots."""
    out.mkdir(parents=True, exist_ok=True)
    flat = headline(results)
    results = {
        **results,
        "structured_overhead_ratio": flat["structured_overhead_ratio"],
        "first_call_ratio": flat["first_call_ratio"],
        "compile_p99_ms": flat["compile_p99_ms"],
        "compile_coverage": flat["compile_coverage"],
    }
    results["plots"] = _plots(results, out)
    (out / "latest.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "latest.md").write_text(markdown(results))
