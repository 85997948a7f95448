"""The wrapper speed-ups against the real engine: choice scoring and the forced prefix.

Correctness only (no timings): scored labels come from the set with probabilities that
sum to 1 and follow the input; forced-prefix and plain decoding both give valid answers.
"""

from __future__ import annotations

import math

import httpx
import jsonschema
import pytest

SENTIMENT_LABELS = ["positive", "negative", "neutral"]


def _invoke(http: httpx.Client, name: str, data: dict[str, object], **options: object) -> httpx.Response:
    body: dict[str, object] = {"input": data}
    if options:
        body["options"] = options
    return http.post(f"/v1/wrappers/{name}/invoke", json=body)


def test_choice_output_is_scored_with_a_probability_per_label(http: httpx.Client) -> None:
    response = _invoke(http, "sentiment", {"text": "I love this phone, the battery lasts for days!"})
    assert response.status_code == 200, response.text
    body = response.json()
    scores = body["scores"]
    assert list(scores) == SENTIMENT_LABELS
    assert math.isclose(sum(scores.values()), 1.0, abs_tol=1e-4)
    assert all(0.0 < p < 1.0 for p in scores.values())
    assert body["output"]["label"] == max(scores, key=scores.__getitem__)
    assert body["finish_reason"] == "stop"


def test_scores_follow_the_input(http: httpx.Client) -> None:
    """Real log-probabilities depend on the text: a glowing review gets a higher
    'positive' probability than an angry one."""
    happy = _invoke(http, "sentiment", {"text": "Wonderful! I am so happy with it, thank you!"}).json()
    angry = _invoke(http, "sentiment", {"text": "Awful. It broke at once and support ignored me."}).json()
    assert happy["scores"]["positive"] > angry["scores"]["positive"]
    assert happy["scores"] != angry["scores"]


def test_per_call_labels_are_scored(http: httpx.Client) -> None:
    labels = ["billing", "shipping", "technical", "other"]
    body = _invoke(http, "classify", {"text": "My card was charged twice.", "labels": labels}).json()
    assert body["output"]["label"] in labels
    assert set(body["scores"]) == set(labels)
    assert math.isclose(sum(body["scores"].values()), 1.0, abs_tol=1e-4)


@pytest.mark.parametrize("mode", ["generate", "plain"])
def test_decoded_choice_answers_validate_without_scores(http: httpx.Client, mode: str) -> None:
    body = _invoke(http, "sentiment", {"text": "The meeting is at 3pm."}, decode=mode).json()
    assert body["output"]["label"] in SENTIMENT_LABELS
    assert "scores" not in body


ORDER = {
    "type": "object",
    "properties": {"customer": {"type": "string", "maxLength": 40}, "order_id": {"type": "integer"}},
    "required": ["customer", "order_id"],
}


@pytest.mark.parametrize("mode", ["auto", "generate", "plain"])
def test_forced_prefix_answers_validate(http: httpx.Client, mode: str) -> None:
    text = "Order 1042 was placed by Maria Lopez on 2024-03-02."
    response = _invoke(http, "extract", {"text": text, "schema": ORDER}, decode=mode)
    assert response.status_code == 200, response.text
    jsonschema.validate(response.json()["output"], ORDER)


def test_scoring_needs_a_choice_output(http: httpx.Client) -> None:
    response = _invoke(http, "extract", {"text": "Order 7 by Tom.", "schema": ORDER}, decode="score")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "options.decode"
