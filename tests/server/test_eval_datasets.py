"""Eval sets, stability runs and ``eval compare`` against the session server (real vLLM)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tests.conftest import RunningServer
from tests.server.test_evals import wrapserve
from wrappers.catalogue.classify import Sentiment
from wrappers.evals.dataset import declared_datasets, load_dataset

CATALOGUE_SETS = {
    "sentiment": "labels",
    "classify": "labels",
    "intent": "labels",
    "entities": "fields",
    "invoice": "fields",
}


def stored_runs(home: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(home / "wrapserve.sqlite3") as db:
        db.row_factory = sqlite3.Row
        rows = [dict(row) for row in db.execute("SELECT * FROM eval_runs ORDER BY id")]
    for row in rows:
        row["metrics"] = json.loads(row["metrics"])
        row["calibration"] = row["calibration"] and json.loads(row["calibration"])
    return rows


def test_the_catalogue_eval_sets_run_with_their_metrics_and_calibration(
    server: RunningServer, tmp_path: Path
) -> None:
    for name, metric in CATALOGUE_SETS.items():
        result = wrapserve(tmp_path, "eval", name, "--eval-sets", "--url", server.base_url)
        assert result.returncode == 0, result.stderr
        run = stored_runs(tmp_path)[-1]
        assert (run["wrapper"], run["kind"], run["dataset"]) == (name, "dataset", f"{name}.jsonl")
        assert run["cases"] >= 30 and run["valid"] == run["cases"], run  # every answer parsed and validated
        assert run["metrics"]["metric"] == metric
        assert f"{name}@{run['version']} on {name}.jsonl" in result.stdout
        print(
            f"{name}: pass rate {run['passed'] / run['cases']:.3f}, metrics {json.dumps(run['metrics'])[:300]}"
        )
        if metric == "labels":
            metrics = run["metrics"]
            assert sum(sum(row.values()) for row in metrics["confusion"].values()) == run["cases"]
            # a label case passes exactly when its label is right
            assert metrics["accuracy"] == run["passed"] / run["cases"]
            calibration = run["calibration"]
            assert calibration["held_out_cases"] == run["cases"] // 2
            print(
                f"  expected calibration error on the held-out half: raw {calibration['ece_raw']:.3f},"
                f" calibrated {calibration['ece_calibrated']:.3f} (temperature {calibration['temperature']})"
            )
            assert calibration["ece_calibrated"] < calibration["ece_raw"]
        else:
            assert run["calibration"] is None
    entities = stored_runs(tmp_path)[-2]["metrics"]["per_field"]["entities"]
    assert {"precision", "recall", "f1", "exact"} <= set(entities)


def probe_set(tmp_path: Path) -> Path:
    path = tmp_path / "probe.jsonl"
    texts = [
        "Apples are red.",
        "Bananas, please",
        "Cold rain falls on Oslo today",
        "Dear team",
        "Every one",
        "Zebra",
    ]
    path.write_text("".join(json.dumps({"input": {"text": text}}) + "\n" for text in texts))
    return path


def test_stability_flags_the_fragile_probe_and_passes_the_robust_one(
    server: RunningServer, tmp_path: Path
) -> None:
    dataset = probe_set(tmp_path)
    for name in ("probe-first-letter", "probe-constant"):
        result = wrapserve(
            tmp_path, "eval", name, "--dataset", str(dataset), "--stability", "--url", server.base_url
        )
        assert result.returncode == 0, result.stderr
    fragile, robust = (run["metrics"]["stability"] for run in stored_runs(tmp_path))
    print("fragile:", {kind: r["unchanged"] for kind, r in fragile["per_kind"].items()})
    print("robust:", {kind: r["unchanged"] for kind, r in robust["per_kind"].items()})
    # the first letter changes under letter case and a prefix, for every case
    assert fragile["per_kind"]["case"] == {"cases": 6, "unchanged": 0.0, "changed_cases": [0, 1, 2, 3, 4, 5]}
    assert fragile["per_kind"]["prefix"]["unchanged"] == 0.0
    assert fragile["per_kind"]["punctuation"]["unchanged"] == 1.0  # the first letter stays
    assert fragile["unchanged"] < 0.75
    assert robust["unchanged"] == 1.0
    assert all(r["unchanged"] in (1.0, None) for r in robust["per_kind"].values())
    assert robust["per_kind"]["order"] == {"cases": 0, "unchanged": None, "changed_cases": []}  # one key


def test_compare_puts_two_versions_side_by_side_in_an_html_report(
    server: RunningServer, tmp_path: Path
) -> None:
    [path] = declared_datasets(Sentiment)
    for ref in ("sentiment@1.0.0", Sentiment.ref()):
        result = wrapserve(tmp_path, "eval", ref, "--eval-sets", "--url", server.base_url)
        assert result.returncode == 0, result.stderr
    first, second = stored_runs(tmp_path)
    assert first["dataset_hash"] == second["dataset_hash"] == load_dataset(path).sha256
    report = tmp_path / "report.html"
    result = wrapserve(tmp_path, "eval", "compare", str(first["id"]), Sentiment.ref(), "--out", str(report))
    assert result.returncode == 0, result.stderr
    assert f"{second['cases']} shared cases" in result.stdout
    assert "accuracy" in result.stdout and "B - A" in result.stdout
    page = report.read_text()
    assert page.count("data:image/png;base64,") >= 3  # figures, confusion matrices, reliability
    assert "sentiment@1.0.0" in page and Sentiment.ref() in page
    assert f"report: {report}" in result.stdout

    missing = wrapserve(tmp_path, "eval", "compare", "999", "1")
    assert missing.returncode == 1 and "no stored eval run #999" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_eval_set_errors_are_one_line(server: RunningServer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": {"text": "x"}, "expected": {"label": "positive"}}\n{"input": 3}\n')
    result = wrapserve(tmp_path, "eval", "sentiment", "--dataset", str(bad), "--url", server.base_url)
    assert result.returncode == 1, result.stdout
    assert "bad.jsonl line 2: input" in result.stderr and "Traceback" not in result.stderr
    result = wrapserve(tmp_path, "eval", "language", "--eval-sets", "--url", server.base_url)
    assert result.returncode == 1 and "declares no eval sets" in result.stderr
    assert not (tmp_path / "wrapserve.sqlite3").exists() or not stored_runs(tmp_path)  # nothing half-stored
