"""Empirical schema coverage: real-world schemas sent as ``response_format``, answers checked.

One chat completion per schema of a deterministic maskbench sample (every set there, the
same number from each), the same prompt and ``max_tokens`` for every server. An answer
counts only if it is a 200 that finished (``finish_reason: "stop"``) with content that
validates: with ``jsonschema`` (the schema's own draft; refs resolved inside the document
only) and, for ``format``, with ``jsonschema_rs`` (whose format checks follow the RFCs where
``jsonschema``'s fallbacks reject valid values, e.g. a time ending in ``Z``). Outcomes per
schema: ``valid``; ``refused`` (a 4xx); ``truncated`` (cut off by ``max_tokens``);
``invalid`` (a finished 200 that does not validate: a silent miss); ``error`` (anything
else: a 5xx, a timeout).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import jsonschema_rs
from referencing import Registry

__all__ = ["OUTCOMES", "compare", "measure", "sample_by_set", "summarize"]

OUTCOMES = ("valid", "refused", "truncated", "invalid", "error")
PROMPT = "Answer with a realistic, short JSON value in the required format."


def sample_by_set(folder: Path, count: int, seed: int = 0) -> list[tuple[str, str, Any]]:
    """(set, file name, schema): ``count`` schemas split evenly over maskbench's sets."""
    by_set: dict[str, list[Path]] = {}
    for path in sorted(folder.glob("*.json")):
        # "Github_easy---o1.json" is in set Github_easy; "JME_7.json" in set JME.
        set_name = path.name.split("---")[0] if "---" in path.name else path.name.split("_")[0]
        by_set.setdefault(set_name, []).append(path)
    per_set = max(1, count // len(by_set))
    rng = random.Random(seed)
    chosen = []
    for name, paths in sorted(by_set.items()):
        for path in sorted(rng.sample(paths, min(per_set, len(paths)))):
            chosen.append((name, path.name, json.loads(path.read_text())["schema"]))
    return chosen


def _valid(schema: Any, value: Any) -> bool:
    try:
        validator = jsonschema.validators.validator_for(schema)(schema, registry=Registry())
        if not validator.is_valid(value):
            return False
        return bool(jsonschema_rs.validator_for(schema, validate_formats=True, offline=True).is_valid(value))
    except Exception:  # an unresolvable ref or a schema the validators cannot read: not verified
        return False


async def _one(
    http: httpx.AsyncClient, model: str, schema: Any, max_tokens: int, gate: asyncio.Semaphore
) -> str:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    async with gate:
        try:
            response = await http.post("/v1/chat/completions", json=body)
        except httpx.HTTPError:
            return "error"
    if 400 <= response.status_code < 500:
        return "refused"
    if response.status_code != 200:
        return "error"
    choice = response.json()["choices"][0]
    if choice.get("finish_reason") != "stop":
        return "truncated"
    try:
        value = json.loads(choice["message"]["content"] or "")
    except (json.JSONDecodeError, RecursionError):
        return "invalid"
    return "valid" if await asyncio.to_thread(_valid, schema, value) else "invalid"


async def measure(
    base_url: str,
    model: str,
    schemas: list[tuple[str, str, Any]],
    max_tokens: int = 256,
    concurrency: int = 16,
    timeout_s: float = 600,
) -> dict[str, str]:
    """file name -> outcome, for every schema, on one server."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s) as http:
        outcomes = await asyncio.gather(
            *(_one(http, model, schema, max_tokens, gate) for _, _, schema in schemas)
        )
    return {name: outcome for (_, name, _), outcome in zip(schemas, outcomes, strict=True)}


def summarize(schemas: list[tuple[str, str, Any]], outcomes: dict[str, str]) -> dict[str, Any]:
    """Counts per set and overall, with the share of schemas answered valid."""
    sets: dict[str, Counter[str]] = {}
    for set_name, name, _ in schemas:
        sets.setdefault(set_name, Counter())[outcomes[name]] += 1
    total: Counter[str] = sum(sets.values(), Counter())

    def block(counts: Counter[str]) -> dict[str, Any]:
        n = sum(counts.values())
        return {
            **{k: counts.get(k, 0) for k in OUTCOMES},
            "schemas": n,
            "coverage": round(counts["valid"] / n, 3),
        }

    return {**block(total), "by_set": {name: block(counts) for name, counts in sorted(sets.items())}}


def compare(blocks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``schema_coverage`` in latest.json: each server's block, the silent misses, and
    Wrapserve's coverage over the best vLLM backend's, per set and overall."""
    vllm = [name for name in blocks if name.startswith("vllm")]
    out: dict[str, Any] = dict(blocks)
    out["silent_misses"] = {name: block["invalid"] for name, block in blocks.items()}
    if "wrapserve" in blocks and vllm:
        best = max(vllm, key=lambda name: blocks[name]["coverage"])
        ratio = (
            blocks["wrapserve"]["coverage"] / blocks[best]["coverage"] if blocks[best]["coverage"] else None
        )
        by_set = {}
        for set_name, block in blocks["wrapserve"]["by_set"].items():
            top = max(blocks[name]["by_set"][set_name]["coverage"] for name in vllm)
            by_set[set_name] = round(block["coverage"] / top, 3) if top else None
        out["ratio_to_best_vllm"] = {
            "best": best,
            "overall": round(ratio, 3) if ratio else None,
            "by_set": by_set,
        }
    return out
