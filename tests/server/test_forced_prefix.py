"""The forced opening of a grammar and choice detection: exact splits, no engine needed."""

from __future__ import annotations

import random
import re

import pytest

from server.invocation.decoding import choice_field
from server.structured.forced import split_forced_prefix
from server.structured.grammar import compact_regex
from wrappers.base import Wrapper
from wrappers.catalogue import BUILTINS

# A regex opening with a class or a group of classes: slow for the engine to index.
_OPENS_WITH_CLASS = re.compile(r"^\(*(\[|\\[dDwWsS]|\.)")


def _samples(regex: str, prefix: str, rng: random.Random) -> list[str]:
    """Strings around the prefix: matches, near misses, and mutations."""
    alphabet = list('{}[]":,abcdefghijklmnopqrstuvwxyz0123456789 -.')
    out = [prefix, prefix[:-1], prefix + "x", ""]
    for _ in range(200):
        body = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        out.append(prefix + body)
        out.append(prefix[: rng.randint(0, len(prefix))] + body)
    return out


@pytest.mark.parametrize(
    ("regex", "prefix", "remainder"),
    [
        (r'(\{"ab":("x"|"y")\})', '{"ab', r'":"((x"|y")\})'),
        (r'\["(x|y)"\]', "", r'\["(x|y)"\]'),  # nothing left before the punctuation
        (r"(a|ab)c", "", "(a|ab)c"),
        (r"abb?c", "a", "bb?c"),
        (r"(xy)*z", "", "(xy)*z"),
        (r"[ab]c", "", "[ab]c"),
        (r"\d+x", "", r"\d+x"),
        (r'\{"key":\[(1|2)*\]\}', '{"key', r'":\[(1|2)*\]\}'),
    ],
)
def test_split_known_cases(regex: str, prefix: str, remainder: str) -> None:
    forced = split_forced_prefix(regex)
    assert (forced.prefix, forced.remainder) == (prefix, remainder)


@pytest.mark.parametrize("wrapper", BUILTINS, ids=lambda w: w.name)
def test_split_is_exact_for_every_catalogue_grammar(wrapper: type[Wrapper]) -> None:
    schema = wrapper.static_schema()
    if schema is None:
        schema = wrapper.output_schema(wrapper.Input.model_validate(wrapper.examples[0].input))
    regex = compact_regex(schema)
    forced = split_forced_prefix(regex)
    assert forced.prefix.startswith("{"), "every object answer opens with a forced brace"
    assert not _OPENS_WITH_CLASS.match(forced.remainder), "the engine's grammar opens with a literal"
    rng = random.Random(0)
    for text in _samples(regex, forced.prefix, rng):
        whole = re.fullmatch(regex, text) is not None
        split = (
            text.startswith(forced.prefix)
            and re.fullmatch(forced.remainder, text[len(forced.prefix) :]) is not None
        )
        assert whole == split, text


def test_choice_outputs_are_detected_and_others_are_not() -> None:
    sentiment = next(w for w in BUILTINS if w.name == "sentiment")
    field = choice_field(sentiment.Output.model_json_schema())
    assert field is not None and field.labels == ("positive", "negative", "neutral")
    assert field.prefix + field.continuation("neutral") == '{"label":"neutral"}'
    two_fields = {
        "type": "object",
        "properties": {"a": {"enum": ["x", "y"]}, "b": {"type": "string"}},
        "required": ["a", "b"],
    }
    assert choice_field(two_fields) is None
    assert choice_field({"type": "object", "properties": {"a": {"enum": ["x", "y"]}}}) is None  # not required
