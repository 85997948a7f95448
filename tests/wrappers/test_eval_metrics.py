"""Eval metrics, eval-set loading, perturbations, calibration and the eval store, on hand-made data."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from wrappers.catalogue.classify import Sentiment
from wrappers.catalogue.extract import Invoice
from wrappers.errors import ConfigurationError
from wrappers.evals.calibration import apply_temperature, expected_calibration_error, fit_and_check
from wrappers.evals.dataset import EvalCase, declared_datasets, load_dataset
from wrappers.evals.metrics import ERROR_LABEL, field_metrics, label_metrics, score_metrics
from wrappers.evals.perturb import KINDS, perturb
from wrappers.evals.store import EvalStore, StoredCase


def cases(*lines: dict[str, Any]) -> list[EvalCase]:
    return [EvalCase.model_validate(line) for line in lines]


def test_label_metrics_on_a_hand_counted_confusion_matrix() -> None:
    truth = ["pos", "pos", "pos", "neg", "neg", "neu"]
    answers = ["pos", "pos", "neg", "neg", None, "pos"]  # None: the call failed
    metrics = label_metrics(
        cases(*({"input": {"text": str(i)}, "expected": {"label": t}} for i, t in enumerate(truth))),
        [None if a is None else {"label": a} for a in answers],
        "label",
    )
    assert metrics["accuracy"] == pytest.approx(3 / 6)
    assert metrics["confusion"]["pos"] == {ERROR_LABEL: 0, "neg": 1, "neu": 0, "pos": 2}
    assert metrics["confusion"]["neg"][ERROR_LABEL] == 1
    # pos: predicted 3 times (2 right), 3 actual -> P 2/3, R 2/3; neg: P 1/2, R 1/2; neu: 0
    assert metrics["per_class"]["pos"]["precision"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["pos"]["recall"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["neg"]["f1"] == pytest.approx(0.5)
    assert metrics["per_class"]["neu"]["f1"] == 0.0
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)


def test_field_metrics_match_entity_lists_as_sets() -> None:
    a, b, c = ({"text": name, "type": "PERSON"} for name in ("Ann Lee", "Bob Ray", "Cy Young"))
    metrics = field_metrics(
        cases(
            {"input": {"text": "1"}, "expected": {"entities": [a, b], "city": "Oslo"}},
            {"input": {"text": "2"}, "expected": {"entities": [c], "city": "Rome"}},
        ),
        [{"entities": [b, a], "city": "Oslo"}, {"entities": [a], "city": "Paris"}],
    )
    entities = metrics["per_field"]["entities"]
    # exact match compares lists in order, so [b, a] != [a, b]; the set F1 does not care
    assert entities["exact"] == 0.0
    assert (entities["precision"], entities["recall"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert metrics["per_field"]["city"]["exact"] == 0.5


def test_score_metrics() -> None:
    metrics = score_metrics(
        cases(*({"input": {"text": str(i)}, "expected": {"score": s}} for i, s in enumerate([1, 3, 5, 2]))),
        [{"score": 1}, {"score": 4}, {"score": 2}, None],
        "score",
    )
    assert metrics["mae"] == pytest.approx((0 + 1 + 3) / 3)
    assert metrics["agreement"] == 0.25 and metrics["within_one"] == 0.5


def test_score_metrics_count_the_calls_their_error_leaves_out() -> None:
    metrics = score_metrics(
        cases(*({"input": {"text": str(i)}, "expected": {"score": 3}} for i in range(4))),
        [{"score": 3}, None, None, {"score": 5}],
        "score",
    )
    assert (metrics["answered"], metrics["failed"], metrics["mae"]) == (2, 2, 1.0)


def test_an_accepted_label_is_right_everywhere_and_labels_of_any_type_compare_as_values() -> None:
    metrics = label_metrics(
        cases(
            {"input": {"text": "a"}, "accept": {"label": ["pos", "neu"]}},
            {"input": {"text": "b"}, "accept": {"label": ["pos", "neu"]}},
            {"input": {"text": "c"}, "expected": {"label": "neg"}},
        ),
        [{"label": "neu"}, {"label": "neg"}, {"label": "neg"}],
        "label",
    )
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    # the accepted "neu" is its own truth: a hit for neu, not a pos missed
    assert metrics["confusion"]["neu"]["neu"] == 1 and metrics["confusion"]["pos"] == {
        "neg": 1,
        "neu": 0,
        "pos": 0,
    }
    assert metrics["per_class"]["neu"]["precision"] == 1.0 and metrics["per_class"]["neu"]["recall"] == 1.0
    flags = label_metrics(
        cases(*({"input": {"text": str(i)}, "expected": {"urgent": v}} for i, v in enumerate([True, False]))),
        [{"urgent": True}, {"urgent": True}],
        "urgent",
    )
    assert flags["accuracy"] == 0.5 and flags["confusion"]["False"]["True"] == 1


def test_checks_judge_generated_text() -> None:
    [case] = cases(
        {
            "input": {"text": "x"},
            "checks": [{"field": "summary", "contains": "refund"}, {"field": "summary", "max_chars": 20}],
        }
    )
    assert case.failures({"summary": "A refund was issued."}) == []
    assert case.failures({"summary": "The order was lost in transit."}) == [
        "summary: does not contain 'refund'",
        "summary: 30 characters, more than 20",
    ]


def test_a_bad_eval_set_line_is_one_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(
        '{"input": {"text": "a"}, "expected": {"label": "x"}}\n\n{"input": {"text": "b"}, "expeted": {}}\n'
    )
    with pytest.raises(ConfigurationError, match=r"set.jsonl line 3: expeted: Extra inputs"):
        load_dataset(path)
    path.write_text('{"input": {"text": "a"}, "checks": [{"field": "s", "regex": "("}]}\n')
    with pytest.raises(ConfigurationError, match="line 1"):
        load_dataset(path)
    with pytest.raises(ConfigurationError, match="cannot read eval set"):
        load_dataset(tmp_path / "missing.jsonl")


def test_the_catalogue_eval_sets_load_and_fit_their_wrappers() -> None:
    for wrapper, minimum in ((Sentiment, 30), (Invoice, 30)):
        [path] = declared_datasets(wrapper)
        dataset = load_dataset(path)
        assert len(dataset.cases) >= minimum
        assert len(dataset.sha256) == 64
        for case in dataset.cases:
            wrapper.Input.model_validate(case.input)
            wrapper.Output.model_validate(case.expected)


def test_perturbations_are_deterministic_and_only_count_real_changes() -> None:
    value: dict[str, Any] = {
        "text": "Please Refund The Broken Kettle I Bought Last Week, thanks",
        "labels": ["a", "b"],
    }
    for kind in KINDS:
        once = perturb(value, kind, seed=7, case=3)
        assert once == perturb(value, kind, seed=7, case=3)
    assert perturb(value, "case", seed=0, case=0) == {**value, "text": value["text"].lower()}
    assert perturb(value, "prefix", seed=0, case=0)["text"].startswith("Hi, ")  # type: ignore[index]
    assert perturb(value, "punctuation", seed=0, case=0)["text"].endswith("thanks.")  # type: ignore[index]
    typo = perturb(value, "typo", seed=0, case=0)["text"]  # type: ignore[index]
    assert typo != value["text"] and sorted(typo) == sorted(value["text"])
    assert perturb(value, "order", seed=0, case=0) == {"labels": ["a", "b"], "text": value["text"]}
    assert list(perturb(value, "order", seed=0, case=0) or {}) == ["labels", "text"]
    assert perturb({"text": "1234"}, "case", seed=0, case=0) is None  # nothing to change
    assert perturb({"text": "x"}, "order", seed=0, case=0) is None


def test_temperature_scaling_lowers_calibration_error_on_held_out_cases() -> None:
    # An over-confident classifier: always 95% sure, right 60% of the time.
    rng = random.Random(0)
    labelled = []
    for _ in range(400):
        truth = rng.choice("ab")
        right = rng.random() < 0.6
        answer = truth if right else ("b" if truth == "a" else "a")
        other = "b" if answer == "a" else "a"
        labelled.append(({answer: 0.95, other: 0.05}, truth))
    result = fit_and_check(labelled)
    assert result is not None
    print(
        f"ECE raw {result['ece_raw']:.3f}, calibrated {result['ece_calibrated']:.3f}, T={result['temperature']}"
    )
    assert result["ece_raw"] > 0.3
    assert result["ece_calibrated"] < result["ece_raw"] / 3
    assert result["temperature"] > 1  # softened
    assert apply_temperature({"a": 0.5, "b": 0.5}, 3.0) == pytest.approx({"a": 0.5, "b": 0.5})
    assert expected_calibration_error([({"a": 1.0, "b": 0.0}, "a")]) == 0.0


def test_an_old_results_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            """CREATE TABLE eval_runs (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL,
            model TEXT NOT NULL, wrapper TEXT NOT NULL, version TEXT NOT NULL, fingerprint TEXT NOT NULL,
            server_url TEXT NOT NULL, cases INTEGER NOT NULL, valid INTEGER NOT NULL, passed INTEGER NOT NULL);
            CREATE TABLE eval_cases (run_id INTEGER NOT NULL, case_index INTEGER NOT NULL, input TEXT NOT NULL,
            output TEXT, error TEXT, failures TEXT NOT NULL, valid INTEGER NOT NULL, passed INTEGER NOT NULL,
            PRIMARY KEY (run_id, case_index));
            INSERT INTO eval_runs VALUES (1, 't', 'm', 'w', '1.0.0', 'f', 'u', 1, 1, 1);
            INSERT INTO eval_cases VALUES (1, 0, '{"text":"a"}', '{"label":"x"}', NULL, '[]', 1, 1);"""
        )
    store = EvalStore(path)
    [old] = store.runs()
    assert (old.kind, old.dataset, old.metrics, old.calibration) == ("golden", "golden", {}, None)
    [case] = store.cases(1)
    assert case.scores is None
    new = store.add_run(
        created_at="t",
        model="m",
        wrapper="w",
        version="1.0.0",
        fingerprint="f",
        server_url="u",
        cases=[StoredCase(0, {"text": "a"}, {"label": "x"}, None, (), True, True, {"x": 0.9, "y": 0.1})],
        kind="dataset",
        dataset="set.jsonl",
        dataset_hash="ab" * 32,
        metrics={"metric": "labels", "accuracy": 1.0},
    )
    assert store.run(new.id) == new
    assert store.cases(new.id)[0].scores == {"x": 0.9, "y": 0.1}
    assert store.baseline(new) is None  # a golden run is no baseline for a dataset run
    assert json.loads(json.dumps(new.metrics)) == {"metric": "labels", "accuracy": 1.0}


def test_compare_lists_changed_cases_and_the_report_escapes_them(tmp_path: Path) -> None:
    from wrappers.evals.compare import compare_runs, resolve_run
    from wrappers.evals.report import write_report

    store = EvalStore(tmp_path / "state.sqlite3")
    hostile = {"text": "<script>alert(1)</script>"}

    def add(version: str, labels: list[str], passed: list[bool]):  # type: ignore[no-untyped-def]
        return store.add_run(
            created_at="t",
            model="m",
            wrapper="w",
            version=version,
            fingerprint="f",
            server_url="u",
            kind="dataset",
            dataset="set.jsonl",
            dataset_hash="h",
            metrics={"metric": "labels", "accuracy": sum(passed) / len(passed)},
            cases=[
                StoredCase(
                    i, [hostile, {"text": "b"}, {"text": "c"}][i], {"label": label}, None, (), True, ok
                )
                for i, (label, ok) in enumerate(zip(labels, passed, strict=True))
            ],
        )

    a = add("1.0.0", ["x", "y", "z"], [True, False, True])
    b = add("1.1.0", ["q", "y2", "z"], [False, True, True])
    golden = store.add_run(
        created_at="t", model="m", wrapper="w", version="1.1.0", fingerprint="f", server_url="u", cases=[]
    )
    # by name, a dataset run beats a newer golden run
    assert resolve_run(store, "w@1") == b and resolve_run(store, f"#{a.id}") == a
    assert resolve_run(store, f"#{golden.id}") == golden
    comparison = compare_runs(a, b, store)
    assert [(item.after.index, item.change) for item in comparison.changes] == [
        (0, "regressed"),
        (1, "fixed"),
    ]
    assert comparison.same_cases and comparison.shared == 3
    page = write_report(comparison, tmp_path / "r.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "data:image/png;base64," in page
