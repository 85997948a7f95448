"""The schema path above the engine, on the fake engine: which schemas are served, how each
keyword is enforced, what is refused, resampling and the 502, ``/v1/schemas/check``.

The fake engine runs the same grammars as the real one (llguidance's matcher, outlines'
automaton), so an answer it gives satisfies the grammar; what the real model does with
them is proved by tests/openai/test_structured_outputs.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import jsonschema_rs
import pytest

from server.structured.keywords import KEYWORDS, Enforcement
from tests.http.conftest import MODEL


async def _chat(client: httpx.AsyncClient, schema: dict[str, Any], **extra: Any) -> httpx.Response:
    return await client.post(
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "answer"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}},
            "max_tokens": 400,
            **extra,
        },
    )


SERVED: dict[str, dict[str, Any]] = {
    "unknown-keywords-and-typos": {
        "type": "object",
        "self": {"href": "x"},
        "links": [],
        "readonly": True,
        "version": 3,
        "_format": "x",
        "descripton": "a typo",
        "additonalProperties": False,
        "properties": {"name": {"type": "string", "maxLength": 8, "alias": "n", "visible": True}},
        "required": ["name"],
    },
    "one-sided-integer-bound": {"type": "integer", "minimum": 0},
    "number-range": {"type": "number", "minimum": 0, "maximum": 1},
    "exclusive-number": {"type": "number", "exclusiveMinimum": 0},
    "wide-integer-range": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 1_000_000},
    "multiple-of": {"type": "integer", "multipleOf": 5, "minimum": 10},
    "formats": {
        "type": "object",
        "properties": {
            name: {"type": "string", "format": name}
            for name in ("ipv4", "ipv6", "date", "date-time", "time", "uuid", "duration", "hostname")
        },
        "required": ["ipv4", "ipv6", "date", "date-time", "time", "uuid", "duration", "hostname"],
        "additionalProperties": False,
    },
    "unknown-format-is-an-annotation": {"type": "string", "format": "int32-ish", "maxLength": 5},
    "pattern-properties": {
        "type": "object",
        "patternProperties": {"^x_[a-z]{2}$": {"type": "integer"}},
        "additionalProperties": False,
        "minProperties": 1,
    },
    "all-of-merged": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string", "maxLength": 4}}, "required": ["a"]},
            {"properties": {"b": {"type": "boolean"}}, "required": ["b"]},
        ]
    },
    "recursion": {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 6},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2},
                },
                "required": ["name"],
                "additionalProperties": False,
            }
        },
        "$ref": "#/$defs/node",
    },
    "draft-07-tuple": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "array",
        "items": [{"type": "string", "maxLength": 3}, {"type": "integer"}],
        "additionalItems": False,
        "minItems": 2,
    },
    "discriminated-union": {
        "oneOf": [
            {"type": "object", "properties": {"kind": {"const": "cat"}}, "required": ["kind"]},
            {"type": "object", "properties": {"kind": {"const": "dog"}}, "required": ["kind"]},
        ],
        "discriminator": {"propertyName": "kind"},
    },
    "required-names-an-undeclared-property": {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a", "b"],
    },
    "unique-items-validated": {
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": 50},
        "minItems": 3,
        "maxItems": 3,
        "uniqueItems": True,
    },
}


@pytest.mark.parametrize("name", list(SERVED))
async def test_real_world_keywords_are_served_and_every_answer_validates(
    fake_http: httpx.AsyncClient, name: str
) -> None:
    schema = SERVED[name]
    answer = await _chat(fake_http, schema)
    assert answer.status_code == 200, answer.text
    choice = answer.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    value = json.loads(choice["message"]["content"])
    jsonschema.validators.validator_for(schema)(schema).validate(value)  # Python's, formats aside
    assert jsonschema_rs.validator_for(schema, validate_formats=True).is_valid(value)  # formats too


async def test_a_constraint_only_validation_can_hold_ends_in_a_502_with_the_raw_output(
    fake_http: httpx.AsyncClient,
) -> None:
    """``not`` is validated, not held by the grammar: an answer that keeps failing it is
    resampled a bounded number of times, then a 502 that carries the raw output, never an
    invalid 200."""
    schema = {"type": "object", "not": {"type": "object"}}
    answer = await _chat(fake_http, schema)
    assert answer.status_code == 502, answer.text
    error = answer.json()["error"]
    assert error["code"] == "output_invalid" and "resamples" in error["message"]
    assert json.loads(error["raw_output"]) == {}
    streamed = await _chat(fake_http, schema, stream=True)
    assert streamed.status_code == 200
    assert '"code": "output_invalid"' in streamed.text or '"code":"output_invalid"' in streamed.text


@pytest.mark.parametrize(
    ("schema", "phrase"),
    [
        ({"$dynamicRef": "#meta"}, "'$dynamicRef'"),
        ({"type": "object", "properties": {"a": {"$ref": "http://127.0.0.1:9/a.json"}}}, "inside the schema"),
        ({"$ref": "#/default", "default": {"type": "string", "pattern": "([a-z"}}, 'is not a "regex"'),
        ({"enum": []}, "empty enum"),
        ({"type": "object", "required": ["b"], "additionalProperties": False}, "Unsatisfiable"),
        ({"type": "integer", "minimum": 3, "maximum": 1}, "Unsatisfiable"),
    ],
)
async def test_what_can_be_neither_held_nor_validated_is_a_400_naming_it(
    fake_http: httpx.AsyncClient, schema: dict[str, Any], phrase: str
) -> None:
    answer = await _chat(fake_http, schema)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "unsupported_schema"
    assert error["param"] == "response_format.json_schema.schema"
    assert phrase in error["message"]


async def test_auto_tool_parameters_are_vetted_too(fake_http: httpx.AsyncClient) -> None:
    answer = await fake_http.post(
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [
                {"type": "function", "function": {"name": "ok", "parameters": {"type": "object"}}},
                {"type": "function", "function": {"name": "f", "parameters": {"$ref": "file:///etc/passwd"}}},
            ],
            "max_tokens": 5,
        },
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "tools.1.function.parameters"


async def test_schema_check_reports_each_keyword_class_without_generating(
    fake_http: httpx.AsyncClient,
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "when": {"type": "string", "format": "date"},
            "note": {"type": "string", "format": "markdown", "x-ui": "textarea"},
        },
        "required": ["tags"],
    }
    checked = (await fake_http.post("/v1/schemas/check", json={"schema": schema})).json()
    assert checked["accepted"] is True and checked["grammar"] == "llguidance-json"
    found = {(use["path"], use["keyword"]): use["enforcement"] for use in checked["keywords"]}
    assert found[("#/properties/tags", "uniqueItems")] == "validated"
    assert found[("#/properties/tags", "items")] == "grammar"
    assert found[("#/properties/when", "format")] == "grammar"
    assert ("#/properties/note", "format") not in found  # an annotation: nothing to enforce
    assert checked["validated_only"] == ["uniqueItems"]
    assert checked["compile_ms"] >= 0

    refused = (await fake_http.post("/v1/schemas/check", json={"schema": {"$dynamicRef": "#x"}})).json()
    assert refused["accepted"] is False
    assert refused["error"]["keyword"] == "$dynamicRef" and refused["error"]["path"] == "#"

    wrapper = (await fake_http.post("/v1/schemas/check", json={"wrapper": "sentiment"})).json()
    assert (
        wrapper["accepted"] and wrapper["grammar"] == "outlines-regex" and wrapper["wrapper"] == "sentiment"
    )
    assert wrapper["longest_answer_chars"] == len('{"label":"positive"}')
    first = (
        await fake_http.post("/v1/schemas/check", json={"wrapper": "keywords", "version": "1.0.0"})
    ).json()
    assert first["longest_answer_chars"] is None  # its words had no length bound
    both = await fake_http.post("/v1/schemas/check", json={"schema": {}, "wrapper": "sentiment"})
    assert both.status_code == 422
    unknown = await fake_http.post("/v1/schemas/check", json={"wrapper": "no-such-wrapper"})
    assert unknown.status_code == 404


def test_every_assertion_keyword_is_in_exactly_one_class_and_the_readme_says_which() -> None:
    classes = {enforcement for enforcement, _ in KEYWORDS.values()}
    assert classes == {Enforcement.GRAMMAR, Enforcement.VALIDATED, Enforcement.REFUSED}
    for keyword in ("uniqueItems", "not", "if", "dependentRequired", "contains", "minimum", "allOf"):
        assert keyword in KEYWORDS
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("<!-- keyword-table:start -->")[1].split("<!-- keyword-table:end -->")[0]
    documented = {
        (row.split("|")[1].strip(), keyword)
        for row in table.strip().splitlines()[2:]
        for keyword in re.findall(r"`([^`]+)`", row.split("|")[2])
    }
    assert documented == {(enforcement.value, keyword) for keyword, (enforcement, _) in KEYWORDS.items()}
