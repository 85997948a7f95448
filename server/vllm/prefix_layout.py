"""A wrapper's prompt laid out for vLLM's prefix cache: the shared prefix padded to whole blocks.

vLLM's prefix cache shares whole blocks only. A prefix every call shares (a wrapper's
system turn, the user turn's opening, the literal start of its user message) that ends
mid-block shares that block with the start of the per-call text, so the block is cached
only for a call whose text starts with the same token, and every other call recomputes
the tail of the shared prefix (up to a block of tokens). With the system turn padded so
that the shared prefix ends on a block boundary, all of it is served from the cache and
a call computes only its own text.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from server.vllm.piece_encoding import PieceEncoder

__all__ = ["PAD_UNIT", "ChatLayout", "Paddings", "system_padding"]

# One token in the BPE vocabularies checked; ``system_padding`` counts rather than trusts it.
PAD_UNIT = " ."

Chat = list[dict[str, str]]


# Texts that may follow the shared start of a user message. The shared prefix is where all
# of their tokenizations still agree, so the next token never merges into it.
PROBES = ("x", "Y", "7", " z", "\n", ".", "(", "'")


def system_padding(
    system: str,
    block_size: int,
    render: Callable[[Chat, bool], str],
    encode: Callable[[str], list[int]],
    user_head: str = "",
) -> str:
    """Text that, appended to ``system``, ends the prefix every call shares on a block boundary.

    That prefix is the rendered system turn, the user turn's opening and ``user_head``
    (the literal start of every user message), up to the last token no user text can
    change; for a template that folds the system text into the user turn, the same
    text in the order it renders. ``render(chat, add_generation_prompt)`` applies the
    chat template; ``encode`` turns its text into token ids. '' where no padding puts the
    boundary there: the template refuses the chat, or renders the system text after
    anything a call changes.
    """

    # Wrapper messages are stripped: with no head, no user text starts with whitespace.
    probes = PROBES if user_head else [p for p in PROBES if not p[0].isspace()]

    def shared_tokens(padding: str) -> int:
        padded = {"role": "system", "content": system + padding}
        prompts = [encode(render([padded, {"role": "user", "content": user_head + p}], True)) for p in probes]
        return _common_prefix_length(prompts)

    try:
        needed = -shared_tokens("") % block_size
        for units in range(needed, needed + block_size):  # the first try, when a unit is one token
            padding = PAD_UNIT * units
            if shared_tokens(padding) % block_size == 0:
                return padding
    except Exception:  # templates raise their own error types for chats they refuse
        return ""
    return ""


def _common_prefix_length(sequences: list[list[int]]) -> int:
    length = 0
    for column in zip(*sequences, strict=False):
        if any(token != column[0] for token in column):
            break
        length += 1
    return length


class Paddings:
    """The system padding found per (system text, user head), shared by the layouts of one
    tokenizer (each thread has its own copy of the tokenizer; the padding is the same)."""

    def __init__(self, remembered: int = 1024) -> None:
        self._found: OrderedDict[tuple[str, str], str] = OrderedDict()  # least recent first
        self._remembered = remembered
        self._lock = threading.Lock()

    def get(self, system: str, user_head: str) -> str | None:
        with self._lock:
            padding = self._found.get((system, user_head))
            if padding is not None:
                self._found.move_to_end((system, user_head))
            return padding

    def put(self, system: str, user_head: str, padding: str) -> None:
        with self._lock:
            self._found[(system, user_head)] = padding
            if len(self._found) > self._remembered:
                self._found.popitem(last=False)


class ChatLayout:
    """One tokenizer and chat template: render, encode, and the system padding for them.

    The padding is remembered per system text (a wrapper's turn, or a label set's) and
    user head: it costs a few tokenizations the first time a pair is seen.
    """

    def __init__(
        self,
        tokenizer: Any,
        chat_template: str | None,
        block_size: int | None,
        paddings: Paddings | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.block_size = block_size  # None: no prefix cache, nothing to align to
        self.paddings = paddings or Paddings()
        self._piece_encoder = PieceEncoder.for_tokenizer(tokenizer)  # None: encode whole texts

    def render(self, chat: Chat, generation_prompt: bool) -> str:
        rendered = self.tokenizer.apply_chat_template(
            chat, tokenize=False, add_generation_prompt=generation_prompt, chat_template=self.chat_template
        )
        assert isinstance(rendered, str)
        return rendered

    def encode(self, text: str) -> list[int]:
        # The chat template already carries the special tokens it wants.
        if self._piece_encoder is not None:
            return self._piece_encoder.encode(text)
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _aligned(self, chat: Chat, align_through: str | None) -> bool:
        return (
            align_through is not None
            and bool(self.block_size)
            and len(chat) > 1
            and chat[0]["role"] == "system"
        )

    def padding_known(self, chat: Chat, align_through: str | None) -> bool:
        """Whether ``encode_chat`` of this chat is one render and one encode (no padding search)."""
        return not self._aligned(chat, align_through) or (
            self.paddings.get(chat[0]["content"], align_through or "") is not None
        )

    def encode_chat(
        self, chat: Chat, assistant_prefix: str = "", align_through: str | None = None
    ) -> list[int]:
        """The chat's token ids, ready for the answer. With ``align_through`` (the literal
        start every call's user message shares; '' for none), a leading system turn is
        padded so that the prefix calls share ends on a block boundary."""
        if self._aligned(chat, align_through):
            padding = self.padding(chat[0]["content"], align_through or "")
            chat = [{**chat[0], "content": chat[0]["content"] + padding}, *chat[1:]]
        return self.encode(self.render(chat, True) + assistant_prefix)

    def padding(self, system: str, user_head: str = "") -> str:
        if not self.block_size:
            return ""
        padding = self.paddings.get(system, user_head)
        if padding is None:
            padding = system_padding(system, self.block_size, self.render, self.encode, user_head)
            self.paddings.put(system, user_head, padding)
        return padding
