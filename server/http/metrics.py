"""Prometheus metrics: one registry per app (never the process-global default).

Request counts and latency come from ``server.http.middleware.observe``'s middleware; token counts from
``GuardedEngine``; grammar compile times from the compiler's hook; gauges (engine queue,
admission, grammar cache, KV cache) are read when scraped, so they are never stale.

With several API workers (``WRAPSERVE_API_WORKERS``), prometheus-client's multiprocess
mode keeps every worker's counters and histograms in ``PROMETHEUS_MULTIPROC_DIR``, and
``/metrics`` (answered by any worker) adds them up. The live values are written there by
each worker every second (and by the answering worker at the scrape): summed over the
workers (counters stay counters), except ``wrapserve_ready``, the lowest; the KV cache
usage is left out (no worker's reading is current).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from server.engine.protocol import KvCacheReporter

__all__ = ["Metrics", "router"]

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
PUBLISH_EVERY_S = 1.0
# How the workers' live values combine; the rest are summed (each worker counts its own).
_MODES: dict[str, Literal["livemin", "livesum"]] = {
    "wrapserve_ready": "livemin",  # 1 only when every worker is ready
}
# vLLM sends the engine's cache figures to one API process per step, so a worker's reading
# may be any age: with several workers the KV cache usage is left out, not shown stale.
_NOT_PUBLISHED = {"wrapserve_engine_kv_cache_usage"}


class _LiveGauges(Collector):
    """Values read at scrape time from the objects that own them."""

    def __init__(self, state: Callable[[], Any]) -> None:
        self._state = state

    def collect(self) -> Iterable[Metric]:
        state = self._state()
        engine = state.engine
        queue = GaugeMetricFamily("wrapserve_engine_queue_depth", "Requests unfinished in the engine")
        kv = GaugeMetricFamily(
            "wrapserve_engine_kv_cache_usage", "Share of the engine's KV cache in use (0-1)"
        )
        if engine is not None:
            queue.add_metric([], engine.queue_depth())
            usage = engine.kv_cache_usage() if isinstance(engine, KvCacheReporter) else None
            if usage is not None:
                kv.add_metric([], usage)
        yield queue
        yield kv
        admission = state.admission
        yield GaugeMetricFamily(
            "wrapserve_admitted_requests", "Requests admitted and not yet answered", value=admission.requests
        )
        yield GaugeMetricFamily(
            "wrapserve_admitted_tokens", "Estimated tokens of admitted requests", value=admission.tokens
        )
        yield CounterMetricFamily(
            "wrapserve_admission_rejected",
            "Requests refused with 429 by backpressure",
            value=admission.rejected,
        )
        grammars = state.grammars
        yield CounterMetricFamily("wrapserve_grammar_cache_hits", "Grammar cache hits", value=grammars.hits)
        yield CounterMetricFamily(
            "wrapserve_grammar_cache_misses", "Grammar cache misses", value=grammars.misses
        )
        yield GaugeMetricFamily("wrapserve_grammar_cache_entries", "Grammars cached", value=len(grammars))
        yield GaugeMetricFamily(
            "wrapserve_grammar_cache_bytes",
            "Approximate bytes held by the grammar cache",
            value=grammars.cache_bytes,
        )
        yield GaugeMetricFamily(
            "wrapserve_ready", "1 when the server accepts work", value=1 if state.phase == "ready" else 0
        )
        answers = CounterMetricFamily(
            "wrapserve_wrapper_answers",
            "Wrapper answers by wrapper, the version that served them and the channel that chose it",
            labels=["wrapper", "version", "channel"],
        )
        for labels, count in sorted(state.wrappers.answers.items()):
            answers.add_metric(list(labels), count)
        yield answers
        shadows = CounterMetricFamily(
            "wrapserve_shadow_comparisons",
            "Shadow calls by outcome: agreed or disagreed with the served answer, error, dropped (too many)",
            labels=["wrapper", "served_version", "candidate_version", "outcome"],
        )
        for shadow_labels, count in sorted(state.shadow.outcomes.items()):
            shadows.add_metric(list(shadow_labels), count)
        yield shadows


class Metrics:
    """Every metric of one app, in the app's own registry."""

    def __init__(self, state: Callable[[], Any]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "wrapserve_requests",
            "HTTP requests by route template, method, wrapper and status",
            ["route", "method", "wrapper", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "wrapserve_request_duration_seconds",
            "HTTP request latency by route template",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens_in = Counter(
            "wrapserve_prompt_tokens", "Prompt tokens sent to the engine", registry=self.registry
        )
        self.tokens_out = Counter(
            "wrapserve_completion_tokens", "Tokens generated by the engine", registry=self.registry
        )
        self.grammar_compile = Histogram(
            "wrapserve_grammar_compile_seconds",
            "Time to compile a new output grammar (cache misses only)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self._live = _LiveGauges(state)
        self.multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        self._published: dict[str, Gauge] = {}
        self._counters: dict[str, Counter] = {}
        self._counted: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}  # what is published
        if not self.multiprocess:
            self.registry.register(self._live)

    def render(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        self.publish()
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker)
        return generate_latest(every_worker)

    def publish(self) -> None:
        """Multiprocess mode: this worker's live values, where the other workers' are.

        Gauges are set; counters stay counters, increased by what this worker counted
        since it last published, so their type is the same with one worker or many."""
        for family in self._live.collect():
            if family.name in _NOT_PUBLISHED:
                continue
            for sample in family.samples:
                labels = tuple(sorted(sample.labels.items()))
                if family.type == "counter":
                    counter = self._counters.get(family.name)
                    if counter is None:
                        counter = Counter(
                            family.name, family.documentation, list(sample.labels), registry=None
                        )
                        self._counters[family.name] = counter
                    delta = sample.value - self._counted.get((family.name, labels), 0.0)
                    if delta > 0:
                        (counter.labels(**sample.labels) if sample.labels else counter).inc(delta)
                        self._counted[(family.name, labels)] = sample.value
                    continue
                gauge = self._published.get(sample.name)
                if gauge is None:
                    gauge = Gauge(
                        sample.name,
                        family.documentation,
                        list(sample.labels),
                        multiprocess_mode=_MODES.get(sample.name, "livesum"),
                        registry=None,
                    )
                    self._published[sample.name] = gauge
                (gauge.labels(**sample.labels) if sample.labels else gauge).set(sample.value)

    async def publish_periodically(self) -> None:
        while True:
            self.publish()
            await asyncio.sleep(PUBLISH_EVERY_S)


router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
