"""Prompt encoding by pieces between special tokens equals the tokenizer's own encoding.

Checked with the embedded model's tokenizer on every catalogue wrapper's prompt and on
seeded random texts built from the fragments where tokenizers differ (special tokens inside
user text, adjacent tokens, spaces, digits, non-ASCII); and, with small tokenizers built
here, that the encoder declines the ones whose pieces do not encode on their own.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from server.vllm.piece_encoding import PieceEncoder
from server.vllm.prefix_layout import ChatLayout
from wrappers.catalogue import BUILTINS

MODEL_DIR = Path.home() / ".cache" / "wrapserve" / "models" / "smollm2-135m-instruct"

FRAGMENTS = (
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "user\n", "assistant", " ", "  ", "\n", "\n\n",
    "Hello", " world", "12", "345", "é", "漢字", "🙂", "<|im_", "start|>", "{\"a\": 1}", "\t", ".",
)  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return AutoTokenizer.from_pretrained(MODEL_DIR)


@pytest.fixture(scope="module")
def encoder(tokenizer: Any) -> PieceEncoder:
    found = PieceEncoder.for_tokenizer(tokenizer)
    assert found is not None, "the embedded tokenizer is piece-local: the encoder must take it"
    return found


def test_every_catalogue_prompt_encodes_as_the_tokenizer_does(tokenizer: Any, encoder: PieceEncoder) -> None:
    layout = ChatLayout(tokenizer, None, None)
    for wrapper in BUILTINS:
        for example in wrapper.examples:
            data = wrapper.Input.model_validate(example.input)
            chat = [{"role": m.role, "content": m.content} for m in wrapper.messages(data)]
            text = layout.render(chat, True)
            expected = tokenizer.encode(text, add_special_tokens=False)
            assert encoder.encode(text) == expected, wrapper.name
            assert encoder.encode(text) == expected, f"{wrapper.name}, its pieces remembered"


def test_random_texts_around_special_tokens_encode_as_the_tokenizer_does(
    tokenizer: Any, encoder: PieceEncoder
) -> None:
    generator = random.Random(21)
    for _ in range(400):
        text = "".join(generator.choice(FRAGMENTS) for _ in range(generator.randint(0, 12)))
        assert encoder.encode(text) == tokenizer.encode(text, add_special_tokens=False), repr(text)


def test_a_piece_longer_than_the_bound_is_encoded_and_not_kept(tokenizer: Any) -> None:
    encoder = PieceEncoder.for_tokenizer(tokenizer)
    assert encoder is not None
    long_piece = "word " * 2000
    text = f"<|im_start|>user\n{long_piece}<|im_end|>"
    assert encoder.encode(text) == tokenizer.encode(text, add_special_tokens=False)
    assert long_piece not in encoder._pieces and "user\n" + long_piece not in encoder._pieces


def test_remembered_pieces_are_bounded(tokenizer: Any) -> None:
    encoder = PieceEncoder.for_tokenizer(tokenizer)
    assert encoder is not None
    for index in range(encoder._remembered + 50):
        encoder.encode(f"<|im_start|>text {index}<|im_end|>")
    assert len(encoder._pieces) == encoder._remembered


def small_tokenizer(pre_tokenizer: Any, separator: AddedToken) -> PreTrainedTokenizerFast:
    vocab = {"[UNK]": 0, "▁a": 1, "a": 2, "▁": 3}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizer
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    tokenizer.add_special_tokens({"additional_special_tokens": [separator]})
    return tokenizer


def test_a_metaspace_that_marks_only_the_start_of_the_text_is_declined() -> None:
    separator = AddedToken("<sep>", special=True, normalized=False)
    tokenizer = small_tokenizer(pre_tokenizers.Metaspace(prepend_scheme="first"), separator)
    separator_id = tokenizer.convert_tokens_to_ids("<sep>")
    assert isinstance(separator_id, int)
    naive = PieceEncoder(tokenizer.backend_tokenizer, {"<sep>": separator_id})
    # The second "a" is not at the start of the text: only the whole-text encoding knows that.
    assert naive.encode("a<sep>a") != tokenizer.encode("a<sep>a", add_special_tokens=False)
    assert PieceEncoder.for_tokenizer(tokenizer) is None

    for scheme in ("always", "never"):
        local = small_tokenizer(pre_tokenizers.Metaspace(prepend_scheme=scheme), separator)
        assert PieceEncoder.for_tokenizer(local) is not None, scheme


def test_bpe_dropout_is_declined(tokenizer: Any) -> None:
    dropping = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    )
    dropping.backend_tokenizer.model.dropout = 0.5
    assert json.loads(dropping.backend_tokenizer.to_str())["model"]["dropout"] == 0.5
    assert PieceEncoder.for_tokenizer(dropping) is None


def test_a_cutting_token_that_strips_the_whitespace_beside_it_is_declined() -> None:
    separator = AddedToken("<sep>", special=True, normalized=False, rstrip=True)
    tokenizer = small_tokenizer(pre_tokenizers.WhitespaceSplit(), separator)
    assert PieceEncoder.for_tokenizer(tokenizer) is None


def test_a_tokenizer_that_encodes_special_tokens_as_text_is_declined(tokenizer: Any) -> None:
    splitting = AutoTokenizer.from_pretrained(MODEL_DIR, split_special_tokens=True)
    assert PieceEncoder.for_tokenizer(splitting) is None
