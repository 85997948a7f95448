"""Real-world JSON Schemas (MaskBench) through the extract wrapper, on the real engine.

A deterministic sample of the schemas goes through ``POST /v1/wrappers/extract/batch``
with a short text built from one of each schema's valid instances. Every item must end
in one of three clear ways: a 200 whose output validates against the schema, a 4xx that
names the problem (a keyword the grammar cannot enforce, a grammar too costly to build,
a prompt too long), or a 502 that keeps the raw model output. Never another 5xx, never a
hang. The data set lives outside the repository (``../shared/data/maskbench``, see its
SOURCE.md: one JSON file per schema with ``schema`` and ``tests``).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import httpx
import jsonschema
import pytest

from tests.conftest import REPO

MASKBENCH = REPO.parent / "shared" / "data" / "maskbench"
SAMPLE_SIZE = 30
SEED = 20_240_601
CHUNK = 6  # items per batch request: batched for speed, small enough to bound each request
MAX_TOKENS = 256
CLEAR_4XX = {
    400: {"unsupported_schema", "grammar_compile_failed", "context_length_exceeded"},
    422: {"invalid_input"},  # e.g. a boolean schema where extract needs an object
}
TRUNCATED_OR_INVALID = {"output_truncated", "output_invalid"}


def sample_cases() -> list[tuple[str, Any, str]]:
    """(file name, schema, text) for every Nth MaskBench file, from a seeded offset."""
    files = sorted(MASKBENCH.glob("*.json"))
    step = max(1, len(files) // SAMPLE_SIZE)  # every Nth file: each split in proportion
    chosen = files[random.Random(SEED).randrange(step) :: step][:SAMPLE_SIZE]
    cases = []
    for path in chosen:
        entry = json.loads(path.read_text())
        valid = [test["data"] for test in entry.get("tests", []) if test.get("valid")]
        text = describe(valid[0]) if valid else "No record was given."
        cases.append((path.name, entry["schema"], text))
    return cases


def describe(value: Any, prefix: str = "", limit: int = 30) -> str:
    """A short plain-text rendering of a JSON instance: one 'path: value' line per leaf."""
    lines: list[str] = []

    def walk(node: Any, path: str) -> None:
        if len(lines) >= limit:
            return
        if isinstance(node, dict):
            for key, sub in node.items():
                walk(sub, f"{path} {key}".strip())
        elif isinstance(node, list):
            for sub in node:
                walk(sub, path)
        else:
            shown = node if isinstance(node, str) else json.dumps(node)
            lines.append(f"{path or 'value'}: {shown}"[:200])

    walk(value, prefix)
    return "\n".join(lines) or "An empty record."


def outcome(schema: Any, item: dict[str, Any]) -> str:
    """Classify one batch item, failing the test on anything that is not a clear outcome."""
    if "error" not in item:
        jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(
            item["output"]
        )
        return "200 valid"
    error, status = item["error"], item["status"]
    assert error["message"], item
    if status in CLEAR_4XX:
        assert error["code"] in CLEAR_4XX[status], item
        return f"{status} {error['code']}"
    assert status == 502 and error["code"] in TRUNCATED_OR_INVALID, item
    assert isinstance(error["raw_output"], str), item
    return f"502 {error['code']}"


@pytest.mark.skipif(not MASKBENCH.is_dir(), reason=f"MaskBench data not found at {MASKBENCH}")
def test_real_world_schemas_end_clearly(http: httpx.Client, request: pytest.FixtureRequest) -> None:
    cases = sample_cases()
    tally: Counter[str] = Counter()
    report = []
    for start in range(0, len(cases), CHUNK):
        chunk = cases[start : start + CHUNK]
        response = http.post(
            "/v1/wrappers/extract/batch",
            json={
                "inputs": [{"text": text, "schema": schema} for _, schema, text in chunk],
                "options": {"max_tokens": MAX_TOKENS},
            },
            timeout=httpx.Timeout(60 + 30 * len(chunk)),  # a hang fails the test, it does not block it
        )
        assert response.status_code == 200, response.text
        for (name, schema, _), item in zip(chunk, response.json()["results"], strict=True):
            result = outcome(schema, item)
            tally[result] += 1
            report.append(
                f"  {name}: {result}" + (f" ({item['error']['message'][:100]})" if "error" in item else "")
            )
    assert sum(tally.values()) == len(cases)
    summary = ", ".join(f"{key}: {count}" for key, count in sorted(tally.items()))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"\nMaskBench sample of {len(cases)} schemas via extract: {summary}\n" + "\n".join(report)
        )
    assert tally["200 valid"] > 0, "no schema in the sample produced a valid answer"
