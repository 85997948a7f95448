"""An answer vLLM was told not to detokenize reads, decoded whole, exactly as vLLM's
incremental detokenizer (a ``tokenizers`` DecodeStream primed with the prompt) would have
streamed it: multi-byte characters split across tokens, special tokens, leading spaces."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from server.vllm.sampling import answer_text

MODEL_DIR = Path.home() / ".cache" / "wrapserve" / "models" / "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(MODEL_DIR)


def _streamed(tokenizer: Any, prompt: list[int], answer: list[int]) -> str:
    from tokenizers.decoders import DecodeStream

    stream = DecodeStream(ids=prompt, skip_special_tokens=True)
    return "".join(stream.step(tokenizer._tokenizer, token) or "" for token in answer)


def test_whole_answer_reads_as_the_streamed_one(tokenizer: Any) -> None:
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Extract the entities."}], add_generation_prompt=True, tokenize=False
    )
    prompt = tokenizer.encode(rendered + '{"people": ["', add_special_tokens=False)
    texts = [
        'Zoë Ångström", "李小龙"], "places": ["Zürich"]}',
        " leading space, then emoji 🎉🎉 and a tab\tand a newline\n",
        'plain ASCII answer"]}',
    ]
    answers = [tokenizer.encode(text, add_special_tokens=False) for text in texts]
    answers.append([*answers[0], tokenizer.eos_token_id])  # a finished answer ends on EOS
    rng = random.Random(7)
    answers += [[rng.randrange(len(tokenizer)) for _ in range(40)] for _ in range(20)]
    for answer in answers:
        assert answer_text(tokenizer, prompt, answer) == _streamed(tokenizer, prompt, answer)
