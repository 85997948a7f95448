"""Batch input validation: a bad file is rejected whole, with the line that is wrong."""

from __future__ import annotations

import json

import pytest

from server.batches.jsonl import BatchInputInvalid, parse_batch_file, same_endpoint, wrapper_name


def line(custom_id: str, url: str = "/v1/wrappers/sentiment/invoke", **extra: object) -> str:
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": url, "body": {"input": {"text": "hi"}}, **extra}
    )


def parse(*lines: str, **kwargs: object) -> list:
    options: dict = {"max_lines": 100, "known_wrapper": lambda name: name == "sentiment", **kwargs}
    return parse_batch_file("\n".join(lines).encode(), **options)


def rejected(*lines: str, **kwargs: object) -> str:
    with pytest.raises(BatchInputInvalid) as caught:
        parse(*lines, **kwargs)
    assert caught.value.status == 400
    return caught.value.message


def test_good_file_keeps_line_numbers_and_skips_blank_lines() -> None:
    parsed = parse(line("a"), "", line("b", "/v1/chat/completions"), "  ")
    assert [(p.line_no, p.custom_id, p.url) for p in parsed] == [
        (1, "a", "/v1/wrappers/sentiment/invoke"),
        (3, "b", "/v1/chat/completions"),
    ]
    assert json.loads(parsed[0].request_json())["body"] == {"input": {"text": "hi"}}


def test_each_kind_of_bad_line_is_named() -> None:
    assert rejected(line("a"), "{not json").startswith("line 2: not valid JSON")
    assert "duplicate custom_id 'a' (first on line 1)" in rejected(line("a"), line("a"))
    assert "method must be POST" in rejected(line("a").replace('"POST"', '"GET"'))
    assert "is not a batch endpoint" in rejected(line("a", "/v1/embeddings"))
    assert "unknown wrapper 'nope'" in rejected(line("a", "/v1/wrappers/nope/invoke"))
    assert "missing field(s) body" in rejected(
        json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/completions"})
    )
    assert "unknown field(s) extra" in rejected(line("a", extra=1))
    assert "body must be a JSON object" in rejected(
        json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": [1]})
    )
    assert "custom_id must be a non-empty string" in rejected(line(""))
    assert "must be a JSON object" in rejected("[1, 2]")
    assert "stream is not supported" in rejected(
        json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": {"stream": True}})
    )


def test_whole_file_bounds() -> None:
    assert "no requests" in rejected("", " ")
    assert "more than 2 requests" in rejected(line("a"), line("b"), line("c"), max_lines=2)
    with pytest.raises(BatchInputInvalid, match="not UTF-8"):
        parse_batch_file(b"\xff\xfe", max_lines=10)


def test_lines_must_fit_the_batch_endpoint() -> None:
    assert "does not match the batch endpoint /v1/chat/completions" in rejected(
        line("a", "/v1/chat/completions"), line("b"), endpoint="/v1/chat/completions"
    )
    assert same_endpoint("/v1/wrappers/sentiment/invoke", "/v1/wrappers/classify/invoke")
    assert not same_endpoint("/v1/completions", "/v1/chat/completions")
    assert wrapper_name("/v1/wrappers/sentiment/invoke") == "sentiment"
    assert wrapper_name("/v1/wrappers/sentiment/batch") is None


def test_a_lone_surrogate_id_or_a_too_deep_line_is_a_400_naming_the_line() -> None:
    assert "lone surrogate" in rejected(line("ok"), line("\ud800"))
    deep = '{"custom_id": "x", "method": "POST", "url": "/v1/completions", "body": ' + "[" * 30_000
    assert rejected(line("ok"), deep + "]" * 30_000 + "}").startswith("line 2: JSON nested too deeply")


def test_a_line_larger_than_the_request_body_limit_is_refused() -> None:
    long_line = json.dumps(
        {"custom_id": "b", "method": "POST", "url": "/v1/completions", "body": {"prompt": "x" * 2_000}}
    )
    assert "larger than 1000 bytes" in rejected(line("a"), long_line, max_line_bytes=1_000)
