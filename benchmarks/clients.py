"""Async HTTP clients for both servers, with bounded concurrency and per-call measurements.

Every answer is checked client-side against the task's JSON Schema, the same way for both
servers, so "valid" means the same thing in both columns.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import jsonschema

from benchmarks.workloads import Task

__all__ = ["CallResult", "RunStats", "VllmClient", "WrapserveClient", "run_bounded", "summarize"]

Layout = Literal["static-first", "dynamic-first", "block-aligned"]


@dataclass
class CallResult:
    ok: bool
    valid: bool
    latency_s: float
    output_tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    output: Any = None
    correct: bool | None = None
    error: str | None = None


@dataclass
class RunStats:
    results: list[CallResult]
    wall_s: float
    concurrency: int
    extra: dict[str, Any] = field(default_factory=dict)


def _check(task: Task, output: Any, result: CallResult) -> CallResult:
    try:
        jsonschema.validate(output, task.schema())
        result.valid = True
    except jsonschema.ValidationError as error:
        result.error = f"schema: {error.message[:120]}"
    if task.expected and isinstance(output, dict):
        result.correct = all(output.get(key) == value for key, value in task.expected.items())
    return result


class WrapserveClient:
    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self.http = http
        self.base_url = base_url

    async def invoke(self, task: Task, options: dict[str, Any] | None = None) -> CallResult:
        body: dict[str, Any] = {"input": task.input}
        if options:
            body["options"] = options
        started = time.perf_counter()
        response = await self.http.post(f"{self.base_url}/v1/wrappers/{task.wrapper.name}/invoke", json=body)
        latency = time.perf_counter() - started
        if response.status_code != 200:
            return CallResult(False, False, latency, error=f"{response.status_code}: {response.text[:160]}")
        data = response.json()
        usage = data.get("usage", {})
        result = CallResult(
            True,
            False,
            latency,
            output_tokens=int(usage.get("completion_tokens", 0)),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            output=data.get("output"),
        )
        if "scores" in data:
            result.output = {**data["output"], "_scores": data["scores"]}
            _check(task, data["output"], result)
            return result
        return _check(task, data.get("output"), result)

    async def batch(self, tasks: Sequence[Task], options: dict[str, Any] | None = None) -> list[CallResult]:
        """One /batch request for tasks of one wrapper; each item gets the request's latency."""
        body: dict[str, Any] = {"inputs": [task.input for task in tasks]}
        if options:
            body["options"] = options
        started = time.perf_counter()
        response = await self.http.post(
            f"{self.base_url}/v1/wrappers/{tasks[0].wrapper.name}/batch", json=body
        )
        latency = time.perf_counter() - started
        if response.status_code != 200:
            return [CallResult(False, False, latency, error=response.text[:160]) for _ in tasks]
        results = []
        for task, item in zip(tasks, response.json()["results"], strict=True):
            if "error" in item:
                results.append(CallResult(False, False, latency, error=str(item["error"])[:160]))
                continue
            usage = item.get("usage", {})
            result = CallResult(True, False, latency, int(usage.get("completion_tokens", 0)))
            results.append(_check(task, item["output"], result))
        return results


class VllmClient:
    """vLLM's own OpenAI server: the same messages, the same schema via ``response_format``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        model: str,
        system_padding: Callable[[str, str], str] | None = None,
    ) -> None:
        self.http = http
        self.base_url = base_url
        self.model = model
        # (system text, user head) -> the padding Wrapserve's engine appends (block-aligned layout)
        self.system_padding = system_padding

    def messages(self, task: Task, layout: Layout = "static-first") -> list[dict[str, str]]:
        rendered = [{"role": m.role, "content": m.content} for m in task.messages()]
        if layout == "static-first":
            return rendered
        if layout == "block-aligned":
            # What Wrapserve's engine sends: the system turn padded so that the prefix calls
            # share ends on a KV block boundary, here as text in the request (the padding
            # tokenizes back to the same tokens).
            assert self.system_padding is not None, "block-aligned needs the model's tokenizer"
            system, *rest = rendered
            padding = self.system_padding(system["content"], task.wrapper.user_head())
            return [{"role": "system", "content": system["content"] + padding}, *rest]
        # The same words with the per-call text first: no two prompts share a prefix
        # beyond the chat template's header, so the prefix cache cannot help.
        system_text = "\n\n".join(m["content"] for m in rendered if m["role"] == "system")
        user_text = "\n\n".join(m["content"] for m in rendered if m["role"] != "system")
        return [{"role": "user", "content": f"{user_text}\n\n{system_text}"}]

    async def chat(
        self,
        task: Task,
        *,
        structured: Literal["json_schema", "regex", "none"] = "json_schema",
        regex: str | None = None,
        layout: Layout = "static-first",
        max_tokens: int | None = None,
        ignore_eos: bool = False,
    ) -> CallResult:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages(task, layout),
            "max_tokens": max_tokens or task.max_tokens,
            "temperature": 0,
        }
        if ignore_eos:  # vLLM's extra parameter: decode exactly max_tokens tokens
            body["ignore_eos"] = True
        if structured == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": task.schema(), "strict": True},
            }
        elif structured == "regex":
            body["structured_outputs"] = {"regex": regex}
        started = time.perf_counter()
        response = await self.http.post(f"{self.base_url}/v1/chat/completions", json=body)
        latency = time.perf_counter() - started
        if response.status_code != 200:
            return CallResult(False, False, latency, error=f"{response.status_code}: {response.text[:160]}")
        data = response.json()
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        result = CallResult(
            True,
            False,
            latency,
            output_tokens=int(usage.get("completion_tokens", 0)),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            cached_tokens=int(details.get("cached_tokens") or 0),
        )
        text = data["choices"][0]["message"]["content"] or ""
        if structured == "none":
            result.output = text
            result.valid = True  # unconstrained text: validity is not the point of this run
            return result
        try:
            result.output = json.loads(text)
        except json.JSONDecodeError:
            result.error = f"not JSON: {text[:80]!r}"
            return result
        return _check(task, result.output, result)


async def run_bounded(calls: Sequence[Callable[[], Awaitable[CallResult]]], concurrency: int) -> RunStats:
    """Run the calls with at most ``concurrency`` in flight; wall time covers them all."""
    gate = asyncio.Semaphore(concurrency)

    async def one(call: Callable[[], Awaitable[CallResult]]) -> CallResult:
        async with gate:
            try:
                return await call()
            except httpx.HTTPError as error:
                return CallResult(False, False, 0.0, error=f"{type(error).__name__}: {error}")

    started = time.perf_counter()
    results = await asyncio.gather(*(one(call) for call in calls))
    return RunStats(list(results), time.perf_counter() - started, concurrency)


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def summarize(stats: RunStats) -> dict[str, Any]:
    """calls/s, p50/p99 latency, output tokens per call, schema-valid share (and accuracy)."""
    results = stats.results
    latencies = [r.latency_s * 1000 for r in results if r.ok]
    judged = [r.correct for r in results if r.correct is not None]
    summary: dict[str, Any] = {
        "calls": len(results),
        "concurrency": stats.concurrency,
        "wall_s": round(stats.wall_s, 3),
        "calls_per_s": round(len(results) / stats.wall_s, 3) if stats.wall_s else 0.0,
        "p50_ms": round(_percentile(latencies, 0.5), 1),
        "p99_ms": round(_percentile(latencies, 0.99), 1),
        "output_tokens_per_call": round(statistics.fmean(r.output_tokens for r in results), 2)
        if results
        else 0,
        "output_tokens_per_s": round(sum(r.output_tokens for r in results) / stats.wall_s, 1)
        if stats.wall_s
        else 0,
        "prompt_tokens_per_call": round(statistics.fmean(r.prompt_tokens for r in results), 1)
        if results
        else 0,
        "valid_share": round(sum(r.valid for r in results) / len(results), 4) if results else 0.0,
        "errors": sum(not r.ok for r in results),
        "latencies_ms": [round(value, 1) for value in latencies],
    }
    if any(r.cached_tokens for r in results):
        summary["cached_prompt_tokens_per_call"] = round(
            statistics.fmean(r.cached_tokens for r in results), 1
        )
    if judged:
        summary["accuracy"] = round(sum(judged) / len(judged), 4)
    failures = [r.error for r in results if r.error]
    if failures:
        summary["first_errors"] = failures[:3]
    summary.update(stats.extra)
    return summary
