"""Outlines guides that advance without listing the next tokens (server/vllm/plugins/grammar_advance.py):
vLLM's own outlines grammar and backend decide exactly as before with them. Registration,
switch and the plugin in the engine: test_vllm_plugins.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import outlines_core as oc
import pytest
import torch
from transformers import AutoTokenizer
from vllm.v1.structured_output.backend_outlines import OutlinesBackend, OutlinesGrammar
from vllm.v1.structured_output.backend_types import StructuredOutputOptions

from server.structured.grammar import compact_regex
from server.vllm.plugins.grammar_advance import QuietGuide, quiet_guides
from wrappers.catalogue.extract import Entities

MODEL_DIR = Path.home() / ".cache" / "wrapserve" / "models" / "smollm2-135m-instruct"
VLLM_COMPILE = OutlinesBackend.compile_grammar
if getattr(VLLM_COMPILE, "_wrapserve_grammar_advance", False):  # installed in this process already
    VLLM_COMPILE = VLLM_COMPILE.__wrapped__  # type: ignore[attr-defined]

# A vocabulary of single characters and a few longer tokens (ids from 1; 0 is EOS).
CHARS = list('{}":,abcdefghijklmnopqrstuvwxyz ')
TOKENS = [*CHARS, '{"', '":"', '"}', "abc", "xyz"]
EOS = 0
VOCAB_SIZE = len(TOKENS) + 1
REGEX = r'\{"name":"[a-z ]{1,12}","tag":"(ab|xyz)"\}'


def _guide() -> Any:
    vocabulary = oc.Vocabulary(EOS, {token: [i + 1] for i, token in enumerate(TOKENS)})
    return oc.Guide(oc.Index(REGEX, vocabulary))


def _ids(*pieces: str) -> list[int]:
    return [TOKENS.index(piece) + 1 for piece in pieces]


def _mask(guide: Any) -> list[int]:
    row = torch.full(((VOCAB_SIZE + 31) // 32,), -1, dtype=torch.int32)
    guide.write_mask_into(row.data_ptr(), row.numel(), row.element_size())
    return row.tolist()


ANSWER = _ids('{"', *"name", '":"', "abc", *" de", '"', *",", '"', *"tag", '":"', "xyz", '"}')


def test_a_quiet_guide_walks_the_same_states_and_masks_without_listing_tokens() -> None:
    plain, quiet = _guide(), QuietGuide(_guide())
    for token in ANSWER:
        assert _mask(quiet) == _mask(plain)
        assert quiet.get_tokens() == plain.get_tokens()
        listed = plain.advance(token)
        assert isinstance(listed, list) and listed  # what vLLM's call builds and throws away
        assert quiet.advance(token) is None
        assert quiet.get_state() == plain.get_state()
    assert quiet.is_finished() and plain.is_finished()
    quiet.rollback_state(2)
    assert quiet.advance(ANSWER[-2], return_tokens=True) == _guide_after(ANSWER[:-1]).get_tokens()


def _guide_after(tokens: list[int]) -> Any:
    guide = _guide()
    for token in tokens:
        guide.advance(token)
    return guide


def _grammar(guide: Any) -> OutlinesGrammar:
    return OutlinesGrammar(vocab_size=VOCAB_SIZE, eos_token_id=EOS, guide=guide)


def test_vllms_outlines_grammar_decides_the_same_with_a_quiet_guide() -> None:
    plain, quiet = _grammar(_guide()), _grammar(QuietGuide(_guide()))
    bitmask = {g: torch.full((1, (VOCAB_SIZE + 31) // 32), -1, dtype=torch.int32) for g in ("p", "q")}
    steps: list[list[int]] = [ANSWER[:3], _ids("}"), ANSWER[3:9], ANSWER[9:], [EOS]]
    for tokens in steps:  # a token the grammar refuses ("}" inside a string), then the rest, then EOS
        assert quiet.validate_tokens(tokens) == plain.validate_tokens(tokens)
        assert quiet.accept_tokens("r", tokens) == plain.accept_tokens("r", tokens)
        plain.fill_bitmask(bitmask["p"], 0)
        quiet.fill_bitmask(bitmask["q"], 0)
        assert torch.equal(bitmask["p"], bitmask["q"])
        assert quiet.is_terminated() == plain.is_terminated()
        assert quiet.num_processed_tokens == plain.num_processed_tokens
    assert quiet.is_terminated()
    quiet.rollback(3)
    plain.rollback(3)
    assert quiet.guide.get_state() == plain.guide.get_state() and not quiet.is_terminated()
    assert quiet.accept_tokens("r", [*ANSWER[-2:], EOS]) and quiet.is_terminated()


@pytest.fixture(scope="module")
def backend() -> OutlinesBackend:
    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
    config = SimpleNamespace(speculative_config=None)  # all the backend reads of vLLM's config
    return OutlinesBackend(config, tokenizer=tokenizer, vocab_size=len(tokenizer))  # type: ignore[arg-type]


def test_vllms_backend_with_the_plugin_builds_quiet_guides_that_accept_a_real_answer(
    backend: OutlinesBackend,
) -> None:
    regex = compact_regex(Entities.Output.model_json_schema())
    compile_quietly = quiet_guides(VLLM_COMPILE)
    # The Outlines backend's grammars are OutlinesGrammar; the method is typed for any backend's.
    plain = cast(OutlinesGrammar, VLLM_COMPILE(backend, StructuredOutputOptions.REGEX, regex))
    quiet = compile_quietly(backend, StructuredOutputOptions.REGEX, regex)
    assert isinstance(quiet.guide, QuietGuide) and not isinstance(plain.guide, QuietGuide)
    answer = '{"entities":[{"text":"Maria Lopez","type":"PERSON"},{"text":"Google","type":"ORG"}]}'
    tokens = [*backend.tokenizer.encode(answer, add_special_tokens=False), backend.tokenizer.eos_token_id]
    for token in tokens:
        assert quiet.accept_tokens("r", [token]) == plain.accept_tokens("r", [token]) is True
    assert quiet.is_terminated() and plain.is_terminated()
