"""Prompts are tokenized off the event loop, and texts that cannot fit are refused untokenized.

``VllmEngine`` is built here around the model's real tokenizer and an object that stands
in for vLLM's ``AsyncLLM`` only where these paths touch it (``get_tokenizer``): nothing
here generates.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from server.engine.protocol import ChatMessage, EngineInfo
from server.limits import ContextOverflow
from server.vllm.engine import VllmEngine
from server.vllm.tokenizing import TokenizerLanes

MODEL_DIR = Path.home() / ".cache" / "wrapserve" / "models" / "smollm2-135m-instruct"
MAX_MODEL_LEN = 8192


class _TokenizerOnly:
    """What ``VllmEngine.__init__`` reads from vLLM's AsyncLLM: its tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def get_tokenizer(self) -> Any:
        return self._tokenizer


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(MODEL_DIR)


@pytest.fixture(scope="module")
def engine(tokenizer: Any) -> VllmEngine:
    info = EngineInfo(
        model_id="smollm2-135m-instruct",
        max_model_len=MAX_MODEL_LEN,
        device="cpu",
        structured_output_backend="outlines",
    )
    return VllmEngine(_TokenizerOnly(tokenizer), info, None)


def test_the_ids_are_the_tokenizers(engine: VllmEngine, tokenizer: Any) -> None:
    text = "Count to three: one, two, three."
    assert asyncio.run(engine.encode_text(text)) == tokenizer.encode(text, add_special_tokens=False)
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", text)]
    expected = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages], tokenize=False, add_generation_prompt=True
    )
    encoded = asyncio.run(engine.encode_chat(messages, assistant_prefix='{"a":'))
    assert encoded == tokenizer.encode(expected + '{"a":', add_special_tokens=False)


def test_a_long_prompt_is_tokenized_while_the_event_loop_goes_on(engine: VllmEngine) -> None:
    # Half a megabyte: about half a second of tokenizing on the build machine, and under
    # the length that is refused outright (8192 tokens x the longest token).
    text = "The parcel came late, the box was torn, and nobody answered the phone. " * 7_000

    async def run() -> tuple[int, int]:
        ticks = 0
        encoding = asyncio.ensure_future(engine.encode_text(text))
        while not encoding.done():
            await asyncio.sleep(0.001)
            ticks += 1
        return ticks, len(await encoding)

    ticks, tokens = asyncio.run(run())
    assert tokens > MAX_MODEL_LEN  # it was tokenized (and is then refused by its token count)
    # On the event loop, the tokenizer would have held it for the whole call: no ticks.
    assert ticks >= 10, f"the event loop ran only {ticks} times while the prompt was tokenized"


class _MustNotTokenize:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the text was handed to the tokenizer ({name})")


@pytest.mark.parametrize("where", ["text", "chat"])
def test_a_text_too_long_for_any_tokenization_to_fit_is_refused_untokenized(
    engine: VllmEngine, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "a" * 7_000_000  # under the 8 MiB body bound; seconds of tokenizing
    monkeypatch.setattr(engine, "_tokenizing", _MustNotTokenize())

    async def encode() -> list[int]:
        if where == "text":
            return await engine.encode_text(text)
        return await engine.encode_chat([ChatMessage("user", text)])

    with pytest.raises(ContextOverflow) as refused:
        asyncio.run(encode())
    assert "7000000 characters" in refused.value.message and str(MAX_MODEL_LEN) in refused.value.message
    assert refused.value.param == ("prompt" if where == "text" else "messages")


def test_short_texts_are_tokenized_once_and_handed_out_as_copies(
    engine: VllmEngine, tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    label = 'positive"}'  # a scored label's continuation: the same on every call
    first = asyncio.run(engine.encode_text(label))
    assert first == tokenizer.encode(label, add_special_tokens=False)
    first.append(-1)  # a caller's change to its list must not reach the next caller
    monkeypatch.setattr(engine, "_tokenizing", _MustNotTokenize())
    assert asyncio.run(engine.encode_text(label)) == tokenizer.encode(label, add_special_tokens=False)
    with pytest.raises(AssertionError, match="handed to the tokenizer"):  # a new text still is
        asyncio.run(engine.encode_text('negative"}'))


class _GatedTokenizer:
    """Encoding a long text waits for the gate, so the long lane stays busy until it opens."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def __deepcopy__(self, memo: dict[int, Any]) -> _GatedTokenizer:
        return self  # every lane's copy shares the gate

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        if len(text) > 100:
            assert self.gate.wait(30), "the gate never opened"
        return [len(text)]


def test_a_short_prompt_does_not_wait_behind_a_long_one() -> None:
    tokenizer = _GatedTokenizer()
    lanes = TokenizerLanes(tokenizer, None, None, short_chars=100, inline_chars=10)

    async def run() -> tuple[list[int], list[int]]:
        long = asyncio.ensure_future(lanes.run(1_000, lambda layout: layout.encode("x" * 1_000)))
        await asyncio.sleep(0)  # the long prompt is on its lane first
        short = await asyncio.wait_for(lanes.run(50, lambda layout: layout.encode("y" * 50)), 30)
        assert not long.done()  # still held by its tokenizer
        tokenizer.gate.set()
        return short, await long

    try:
        assert asyncio.run(run()) == ([50], [1_000])
    finally:
        tokenizer.gate.set()
        lanes.shutdown()


def test_only_a_short_single_pass_runs_on_the_event_loop() -> None:
    lanes = TokenizerLanes(_GatedTokenizer(), None, None, short_chars=100, inline_chars=10)

    async def thread_of(chars: int, one_pass: bool = True) -> str:
        return await lanes.run(chars, lambda layout: threading.current_thread().name, one_pass=one_pass)

    async def run() -> list[str]:
        loop_thread = threading.current_thread().name
        names = [await thread_of(10), await thread_of(11), await thread_of(5, one_pass=False)]
        return [("loop" if name == loop_thread else name.rpartition("_")[0]) for name in names]

    try:
        # A padding search (several tokenizations) goes to a thread however short the text.
        assert asyncio.run(run()) == ["loop", "wrapserve-tokenize-short", "wrapserve-tokenize-short"]
    finally:
        lanes.shutdown()
