"""Prompt tokenizing in three lanes: short prompts on the event loop, the rest off it in two
threads, so a long prompt never delays a short one.

A megabyte of prompt takes most of a second to tokenize; on the event loop that would stall
every other request, and behind one shared thread every short call would wait for it (an
8 MB chat body once held the tokenizer for minutes). Prompts up to ``short_chars``
characters go to one thread, longer ones to another, each with a tokenizer of its own (a
Hugging Face fast tokenizer must not be used from two threads at once, and vLLM detokenizes
with its own on the event loop). How long one prompt can hold the long lane is bounded by
the size checks before it (``Limits.max_body_bytes``, ``Limits.max_messages``, and the
engine's refusal of text its context cannot hold).

A prompt of at most ``inline_chars`` characters (a wrapper call's, typically) is tokenized
on the event loop itself, with a third tokenizer: a wrapper prompt, whose repeated pieces
are remembered (``server/vllm/piece_encoding.py``), costs less to encode than handing it to
a thread and back (benchmarks/RESULTS.md, "API-process CPU per call"), and the length bound
keeps the longest such prompt under a millisecond of the loop even when none of it is
remembered (measured there too). Work that may do more than one tokenization (finding a
system turn's padding the first time) goes to a thread whatever its length.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from server.vllm.prefix_layout import ChatLayout, Paddings

__all__ = ["TokenizerLanes"]

T = TypeVar("T")


class TokenizerLanes:
    def __init__(
        self,
        tokenizer: Any,
        chat_template: str | None,
        block_size: int | None,
        short_chars: int = 16_384,
        inline_chars: int = 2_048,
    ) -> None:
        self.short_chars = short_chars
        self.inline_chars = inline_chars
        self._short = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wrapserve-tokenize-short")
        self._long = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wrapserve-tokenize-long")
        paddings = Paddings()
        self._inline_layout, self._short_layout, self._long_layout = (
            ChatLayout(copy.deepcopy(tokenizer), chat_template, block_size, paddings) for _ in range(3)
        )

    @property
    def layout(self) -> ChatLayout:
        """The event loop's layout (start-up measures its tokenizer before any call; after
        that it is used on the loop only)."""
        return self._inline_layout

    async def run(self, chars: int, work: Callable[[ChatLayout], T], *, one_pass: bool = True) -> T:
        """``work`` on the lane for a prompt of ``chars`` characters, with that lane's layout.
        ``one_pass``: the work is a single tokenization of about that length (else it may
        be several, and goes to a thread)."""
        if one_pass and chars <= self.inline_chars:
            return work(self._inline_layout)
        pool, layout = (
            (self._short, self._short_layout)
            if chars <= self.short_chars
            else (self._long, self._long_layout)
        )
        return await asyncio.get_running_loop().run_in_executor(pool, work, layout)

    def shutdown(self) -> None:
        for pool in (self._short, self._long):
            pool.shutdown(wait=False, cancel_futures=True)
