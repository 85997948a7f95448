"""Numbers in JSON answers hold bounded digits (server/structured/digits.py, applied to vLLM's
guidance grammars by server/vllm/plugins/number_digits.py): the bound cuts a fraction that
llguidance's grammar alone lets run on, keeps every answer the schema's grammar admits, and
steps aside where the schema itself needs a longer number."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import llguidance
import llguidance.torch as llguidance_torch
import pytest
from vllm.v1.structured_output.backend_guidance import GuidanceGrammar
from vllm.v1.structured_output.backend_types import StructuredOutputOptions

from server.engine.fake import byte_tokenizer
from server.structured.digits import FRACTION_DIGITS, DigitBound
from server.vllm.plugins.number_digits import DigitBoundGrammar, bounded_json_grammars
from tests.conftest import RunningServer

TOKENIZER = byte_tokenizer()  # one token per byte, then the end token
EOS = TOKENIZER.eos_token


def _vllm_grammar(schema: dict[str, Any]) -> GuidanceGrammar:
    serialized = llguidance.LLMatcher.grammar_from_json_schema(schema)
    matcher = llguidance.LLMatcher(TOKENIZER, serialized, log_level=0)
    return GuidanceGrammar(ll_matcher=matcher, ll_tokenizer=TOKENIZER, vocab_size=TOKENIZER.vocab_size)


def _bounded(schema: dict[str, Any]) -> DigitBoundGrammar:
    return DigitBoundGrammar(_vllm_grammar(schema), DigitBound(TOKENIZER))


def _allowed(grammar: GuidanceGrammar | DigitBoundGrammar) -> set[int]:
    bitmask = llguidance_torch.allocate_token_bitmask(1, TOKENIZER.vocab_size)
    grammar.fill_bitmask(bitmask, 0)
    words = bitmask[0].tolist()
    return {token for token in range(TOKENIZER.vocab_size) if words[token // 32] >> (token % 32) & 1}


DIGITS = {ord(digit) for digit in "0123456789"}
PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}


def test_the_fraction_stops_where_the_schemas_grammar_alone_runs_on() -> None:
    prefix = list(b"0." + b"3" * FRACTION_DIGITS)
    alone, bounded = _vllm_grammar(PROBABILITY), _bounded(PROBABILITY)
    assert alone.accept_tokens("r", prefix) and bounded.accept_tokens("r", prefix)
    assert _allowed(alone) >= DIGITS  # llguidance alone: one more digit, and on
    assert not DIGITS & _allowed(bounded) and EOS in _allowed(bounded)
    assert _bounded(PROBABILITY).validate_tokens(list(b"0." + b"3" * 40)) == prefix


@pytest.mark.parametrize("text", ["0.5", "-3.25", "1e5", "-1.5E-300", "12", "0", "-0.000000000000001"])
def test_ordinary_numbers_pass(text: str) -> None:
    tokens = list(text.encode())
    grammar = _bounded({"type": "number"})
    assert grammar.validate_tokens(tokens) == tokens
    assert grammar.accept_tokens("r", tokens) and EOS in _allowed(grammar)


def test_digits_inside_strings_and_after_the_number_are_not_bounded() -> None:
    schema = {"type": "object", "properties": {"s": {"type": "string"}, "x": {"type": "number"}}}
    text = json.dumps({"s": "0." + "9" * 60, "x": 0.25}, separators=(",", ":")).encode()
    grammar = _bounded(schema)
    assert grammar.validate_tokens(list(text)) == list(text)
    assert grammar.accept_tokens("r", list(text)) and EOS in _allowed(grammar)


def test_two_short_numbers_cannot_join_into_one_long_one() -> None:
    grammar = _bounded({"type": "array", "items": {"type": "number"}})
    assert grammar.accept_tokens("r", list(b"[0." + b"1" * FRACTION_DIGITS))
    assert _allowed(grammar) & {ord(","), ord("]")} and not DIGITS & _allowed(grammar)


def test_a_schema_that_needs_a_longer_number_keeps_its_own_mask() -> None:
    schema = {"type": "number", "exclusiveMinimum": 0.5, "maximum": 1}
    prefix = list(b"0.5" + b"0" * (FRACTION_DIGITS - 1))
    grammar = _bounded(schema)
    assert grammar.accept_tokens("r", prefix)
    allowed = _allowed(grammar)
    assert allowed and allowed == _allowed(_followed(schema, prefix))  # the bound stepped aside
    assert grammar.accept_tokens("r", [ord("1")]) and EOS in _allowed(grammar)


def _followed(schema: dict[str, Any], tokens: list[int]) -> GuidanceGrammar:
    grammar = _vllm_grammar(schema)
    assert grammar.accept_tokens("r", tokens)
    return grammar


def test_rollback_and_reset_follow_the_schemas_matcher() -> None:
    grammar = _bounded(PROBABILITY)
    assert grammar.accept_tokens("r", list(b"0." + b"7" * FRACTION_DIGITS))
    grammar.rollback(3)
    assert _allowed(grammar) >= DIGITS
    grammar.reset()
    assert grammar.accept_tokens("r", list(b"0." + b"1" * FRACTION_DIGITS))
    assert not DIGITS & _allowed(grammar)


def test_an_end_token_the_schema_consumed_is_rolled_back_in_step() -> None:
    """A top-level number does not stop the schema's matcher, so it consumes the end token
    (a speculative one, say) and a rollback counts it: the bound must count it too."""
    grammar = _bounded({"type": "number"})
    assert grammar.accept_tokens("r", [*b"0.1234", EOS])
    grammar.rollback(2)  # back to "0.123"
    assert grammar.accept_tokens("r", list(b"5" * (FRACTION_DIGITS - 3)))
    assert not DIGITS & _allowed(grammar) and EOS in _allowed(grammar)


def test_a_rollback_past_where_the_bound_stepped_aside_puts_it_back() -> None:
    schema = {"type": "number", "exclusiveMinimum": 0.5, "maximum": 1}
    grammar = _bounded(schema)
    assert grammar.accept_tokens("r", list(b"0.5" + b"0" * (FRACTION_DIGITS - 1)))
    _allowed(grammar)  # the masks share nothing here: the bound steps aside
    assert not grammar.bound.active
    assert grammar.accept_tokens("r", [ord("7")])
    grammar.rollback(2)  # the "7" and the last "0": a path the engine rejected
    assert grammar.bound.active and DIGITS & _allowed(grammar)
    assert grammar.accept_tokens("r", [ord("3")])  # 0.5 + 13 zeros + 3: fifteen digits, valid
    assert not DIGITS & _allowed(grammar) and EOS in _allowed(grammar)


def test_true_and_false_are_not_numbers_to_the_bound() -> None:
    bound = DigitBound(TOKENIZER)
    for text, inside in ((b"[true", False), (b",false", False), (b",-", True), (b"1e", True), (b"5]", False)):
        bound.consume(list(text))
        assert bound.inside_number is inside, text


SCHEMA = {
    "x-guidance": {"whitespace_flexible": False},  # as the policy compiles every schema
    "type": "object",
    "properties": {
        "p": PROBABILITY,
        "point": {
            "type": "object",
            "properties": {"x": {"type": "number"}, "y": {"type": "number", "maximum": -2}},
            "required": ["x", "y"],
        },
        "values": {"type": "array", "items": {"type": "number"}, "maxItems": 4},
    },
    "required": ["p", "point", "values"],
    "additionalProperties": False,
}


CLOSING = [EOS, *b'}],"']


@pytest.mark.parametrize("seed", range(8))
def test_a_digit_hungry_sampler_finishes_valid_answers(seed: int) -> None:
    """Offered a digit, the sampler takes one 95 times in 100: every answer still ends, valid,
    each number's digits bounded (the schema's grammar alone lets them run long)."""
    rng = random.Random(seed)

    def decode(grammar: GuidanceGrammar | DigitBoundGrammar, limit: int = 600) -> bytes:
        out = bytearray()
        while len(out) < limit:
            allowed = _allowed(grammar)
            digits = sorted(allowed & DIGITS)
            closing = [token for token in CLOSING if token in allowed]
            if digits and rng.random() < 0.95:
                token = rng.choice(digits)
            else:  # else close what is open, as a model soon would
                token = closing[0] if closing else rng.choice(sorted(allowed))
            if token == EOS:
                return bytes(out)
            assert grammar.accept_tokens("r", [token])
            out.append(token)
        return bytes(out)

    answer = decode(_bounded(SCHEMA))
    jsonschema.validate(json.loads(answer), SCHEMA)
    fractions = re.findall(rb"\.([0-9]+)", answer)
    assert all(len(fraction) <= FRACTION_DIGITS for fraction in fractions), answer
    assert max(len(run) for run in re.findall(rb"[0-9]+", answer)) <= 19
    if seed == 0:  # the same sampler under the schema's grammar alone: numbers run long
        assert max(len(run) for run in re.findall(rb"[0-9]+", decode(_vllm_grammar(SCHEMA)))) > 19


class _Backend:
    ll_tokenizer = TOKENIZER


def test_json_grammars_get_the_bound_and_the_others_do_not() -> None:
    def original(self: Any, request_type: Any, spec: str) -> GuidanceGrammar:
        return _vllm_grammar(json.loads(spec) if request_type is StructuredOutputOptions.JSON else {})

    compile_grammar = bounded_json_grammars(original)
    assert isinstance(compile_grammar(_Backend(), StructuredOutputOptions.JSON, "{}"), DigitBoundGrammar)
    assert isinstance(
        compile_grammar(_Backend(), StructuredOutputOptions.JSON_OBJECT, "{}"), DigitBoundGrammar
    )
    assert isinstance(compile_grammar(_Backend(), StructuredOutputOptions.REGEX, "a"), GuidanceGrammar)


@pytest.mark.engine
def test_the_engine_bounds_numbers_in_client_schemas(server: RunningServer, http: httpx.Client) -> None:
    """Asked for many digits, the small model writes them until ``max_tokens`` unless bounded."""
    schema = {
        "type": "object",
        "properties": {"pi": {"type": "number", "minimum": 0, "maximum": 10}},
        "required": ["pi"],
    }
    prompt = (
        "Write the number pi with as many decimal digits as you know: 3.14159265358979323846264338327950288"
    )
    for temperature in (0.0, 1.0):
        response = http.post(
            "/v1/chat/completions",
            json={
                "model": "smollm2-135m-instruct",
                "messages": [{"role": "user", "content": prompt}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "pi", "schema": schema}},
                "temperature": temperature,
                "seed": 1,
                "max_tokens": 60,
            },
        )
        assert response.status_code == 200, response.text
        choice = response.json()["choices"][0]
        assert choice["finish_reason"] == "stop", choice
        jsonschema.validate(json.loads(choice["message"]["content"]), schema)
        fraction = re.search(r"\.([0-9]+)", choice["message"]["content"])
        assert fraction is None or len(fraction.group(1)) <= FRACTION_DIGITS
    engine_log = Path(server.home, "logs", "engine.log").read_text(errors="replace")
    assert any("EngineCore" in line and "fraction digits" in line for line in engine_log.splitlines())
