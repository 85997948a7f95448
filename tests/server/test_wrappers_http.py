"""The native wrapper API against the real engine and model."""

from __future__ import annotations

import httpx
import jsonschema
import pytest

from wrappers.catalogue import BUILTINS


def test_list_shows_every_builtin_with_schemas(http: httpx.Client) -> None:
    listed = {item["name"]: item for item in http.get("/v1/wrappers").json()["data"]}
    assert {wrapper.name for wrapper in BUILTINS} <= set(listed)  # plus the test user wrappers
    sentiment = listed["sentiment"]
    assert sentiment["versions"] == ["1.1.0", "1.0.0"]  # newest first
    assert sentiment["output_schema"]["properties"]["label"]["enum"] == ["positive", "negative", "neutral"]
    assert sentiment["input_schema"]["required"] == ["text"]
    assert len(sentiment["examples"]) >= 3


def test_invoke_returns_a_validated_typed_answer(http: httpx.Client) -> None:
    response = http.post(
        "/v1/wrappers/sentiment/invoke", json={"input": {"text": "I really love this, great job!"}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["output"]["label"] in {"positive", "negative", "neutral"}
    assert body["wrapper"] == "sentiment" and body["version"] == "1.1.0"
    assert body["fingerprint"].startswith("sha256:")
    assert body["model"] == "smollm2-135m-instruct"
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0
    assert body["finish_reason"] == "stop"
    assert body["latency_ms"] > 0


def test_classify_answers_with_one_of_the_given_labels(http: httpx.Client) -> None:
    labels = ["sports", "politics", "cooking", "weather"]
    for text in ["Heavy rain is expected tomorrow.", "Whisk two eggs with flour and sugar."]:
        body = http.post(
            "/v1/wrappers/classify/invoke", json={"input": {"text": text, "labels": labels}}
        ).json()
        assert body["output"]["label"] in labels


def test_extract_answer_validates_against_the_call_schema(http: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "age": {"type": "integer", "minimum": 0, "maximum": 130},
        },
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    response = http.post(
        "/v1/wrappers/extract/invoke",
        json={"input": {"text": "Anna Berg is 34 years old.", "schema": schema}},
    )
    assert response.status_code == 200, response.text
    jsonschema.validate(response.json()["output"], schema)


def test_invalid_input_is_422_naming_the_field(http: httpx.Client) -> None:
    response = http.post(
        "/v1/wrappers/classify/invoke", json={"input": {"text": "x", "labels": ["only-one"]}}
    )
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "input.labels"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/wrappers/nope/invoke", {"input": {"text": "x"}}),
        ("/v1/wrappers/sentiment/invoke", {"input": {"text": "x"}, "version": "9"}),
    ],
)
def test_unknown_wrapper_or_version_is_404(http: httpx.Client, path: str, body: dict[str, object]) -> None:
    response = http.post(path, json=body)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "wrapper_not_found"


def test_unenforceable_schema_is_a_clear_400(http: httpx.Client) -> None:
    schema = {"type": "object", "properties": {"a": {"$dynamicRef": "#meta"}}}
    response = http.post("/v1/wrappers/extract/invoke", json={"input": {"text": "a b", "schema": schema}})
    assert response.status_code == 400
    assert "'$dynamicRef'" in response.json()["error"]["message"]
    assert "#/properties/a" in response.json()["error"]["message"]


def test_a_schema_outlines_cannot_hold_is_served_through_llguidance(http: httpx.Client) -> None:
    """One-sided bounds and uniqueItems: held by llguidance's grammar and the validator."""
    schema = {
        "type": "object",
        "properties": {
            "age": {"type": "integer", "minimum": 0},
            "tags": {
                "type": "array",
                "items": {"type": "string", "maxLength": 10},
                "maxItems": 3,
                "uniqueItems": True,
            },
        },
        "required": ["age", "tags"],
    }
    response = http.post(
        "/v1/wrappers/extract/invoke",
        json={"input": {"text": "Ada is 36; she likes math and poems.", "schema": schema}},
    )
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    assert output["age"] >= 0 and len(set(output["tags"])) == len(output["tags"]) <= 3


def test_truncated_answer_says_so_with_the_raw_text(http: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"summary": {"type": "string", "minLength": 40}},
        "required": ["summary"],
    }
    response = http.post(
        "/v1/wrappers/extract/invoke",
        json={"input": {"text": "A long story.", "schema": schema}, "options": {"max_tokens": 4}},
    )
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "output_truncated"
    assert error["finish_reason"] == "length"
    assert error["raw_output"].startswith('{"summary":')


def test_batch_keeps_order_and_isolates_bad_items(http: httpx.Client) -> None:
    inputs = [{"text": "Wonderful, thank you!"}, {"text": ""}, {"text": "This is awful."}]
    body = http.post("/v1/wrappers/sentiment/batch", json={"inputs": inputs}).json()
    results = body["results"]
    assert [item["index"] for item in results] == [0, 1, 2]
    assert results[0]["output"]["label"] in {"positive", "negative", "neutral"}
    assert results[1]["error"]["code"] == "invalid_input" and results[1]["status"] == 422
    assert results[2]["output"]["label"] in {"positive", "negative", "neutral"}
    assert (body["succeeded"], body["failed"]) == (2, 1)
