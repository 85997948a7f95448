"""A wrapper's system turn laid out for vLLM's prefix cache: padded to whole KV blocks.

vLLM's prefix cache shares whole blocks only. A system turn that ends mid-block shares
that block with the start of the per-call text, so the block is cached only for a call
whose text starts with the same token, and every other call recomputes the turn's tail
(up to a block of tokens). Padded to a block boundary, the whole turn is served from the
cache and a call computes only its own text.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

__all__ = ["PAD_UNIT", "ChatLayout", "system_padding"]

# One token in the BPE vocabularies checked; ``system_padding`` counts rather than trusts it.
PAD_UNIT = " ."

Chat = list[dict[str, str]]


def system_padding(
    system: str,
    block_size: int,
    render: Callable[[Chat, bool], str],
    encode: Callable[[str], list[int]],
) -> str:
    """Text that, appended to ``system``, ends the rendered system turn on a block boundary.

    ``render(chat, add_generation_prompt)`` applies the chat template; ``encode`` turns its
    text into token ids. '' where the template does not render the system turn as a
    separable token prefix (it refuses a system-only chat, or folds the system text into
    the user turn): then the prompt is left as it is.
    """
    turn_of = [{"role": "system", "content": system}]
    try:
        turn = render(turn_of, False)
        whole = render([*turn_of, {"role": "user", "content": "x"}], True)
    except Exception:  # templates raise their own error types for chats they refuse
        return ""
    if not whole.startswith(turn):
        return ""
    turn_tokens = encode(turn)
    if encode(whole)[: len(turn_tokens)] != turn_tokens:
        return ""  # the turn's tokens depend on what follows it
    needed = -len(turn_tokens) % block_size
    for units in range(needed, needed + block_size):  # the first try, when a unit is one token
        padding = PAD_UNIT * units
        if len(encode(render([{"role": "system", "content": system + padding}], False))) % block_size == 0:
            return padding
    return ""


class ChatLayout:
    """One tokenizer and chat template: render, encode, and the system padding for them.

    The padding is remembered per system text (a wrapper's turn, or a label set's): it
    costs a few tokenizations the first time a system text is seen.
    """

    def __init__(
        self, tokenizer: Any, chat_template: str | None, block_size: int | None, remembered: int = 1024
    ) -> None:
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.block_size = block_size  # None: no prefix cache, nothing to align to
        self.padding = functools.lru_cache(maxsize=remembered)(self._padding)

    def render(self, chat: Chat, generation_prompt: bool) -> str:
        rendered = self.tokenizer.apply_chat_template(
            chat, tokenize=False, add_generation_prompt=generation_prompt, chat_template=self.chat_template
        )
        assert isinstance(rendered, str)
        return rendered

    def encode(self, text: str) -> list[int]:
        # The chat template already carries the special tokens it wants.
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def encode_chat(self, chat: Chat, assistant_prefix: str = "", align_system: bool = False) -> list[int]:
        """The chat's token ids, ready for the answer; ``align_system`` pads a leading
        system turn to whole blocks."""
        if align_system and self.block_size and len(chat) > 1 and chat[0]["role"] == "system":
            chat = [{**chat[0], "content": chat[0]["content"] + self.padding(chat[0]["content"])}, *chat[1:]]
        return self.encode(self.render(chat, True) + assistant_prefix)

    def _padding(self, system: str) -> str:
        if not self.block_size:
            return ""
        return system_padding(system, self.block_size, self.render, self.encode)
