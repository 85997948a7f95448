"""Prompt encoding piece by piece between special tokens, with the pieces calls repeat remembered.

A Hugging Face fast tokenizer first cuts its input at its added tokens that match the raw
text (``<|im_start|>``, ``<|im_end|>``, ...), leftmost-longest, and then encodes each piece
between them on its own. A prompt's ids are therefore its pieces' ids joined by those
tokens' ids. A wrapper's prompt is mostly pieces that every call repeats (the system turn,
the turns' openings, the generation prompt); remembering their ids leaves only the call's
own text to encode.

The decomposition is exact only where the steps after the cut look at a piece alone, so
``PieceEncoder.for_tokenizer`` declines (None: encode the whole text) for a tokenizer
where one does not: a Metaspace step that marks only the start of the whole text
(``prepend_scheme`` "first"), BPE dropout (random by design), a cutting token that strips
the whitespace beside it or must stand as a word, special tokens encoded as text, or
truncation or padding set on the tokenizer. It then checks itself against the whole-text encoding on
probe texts and declines on any difference.
"""

from __future__ import annotations

import json
import re
from array import array
from collections import OrderedDict
from typing import Any

__all__ = ["PieceEncoder"]

# Texts around and between added tokens where a tokenizer that is not piece-local would
# encode differently: leading spaces, digits, newlines, non-ASCII, adjacent tokens.
_PROBE_TEXTS = ("Hello world", " leading space", "12345 678", "\n\nnew lines\n", "é ü 漢字 🙂", "")


class PieceEncoder:
    """Remembers at most ``remembered`` pieces of at most ``max_piece_chars`` characters (a
    few MB at the most), least recently used out first: the pieces every call repeats are
    used on every call and stay. One per tokenizer copy, used from one thread."""

    def __init__(
        self,
        backend: Any,
        cutting_tokens: dict[str, int],
        remembered: int = 1024,
        max_piece_chars: int = 4096,
    ) -> None:
        self._backend = backend
        self._token_ids = cutting_tokens
        longest_first = sorted(cutting_tokens, key=len, reverse=True)  # at one position, the longest wins
        self._cutter = re.compile("(" + "|".join(re.escape(token) for token in longest_first) + ")")
        self._pieces: OrderedDict[str, array[int]] = OrderedDict()  # least recently used first
        self._remembered = remembered
        self._max_piece_chars = max_piece_chars

    @classmethod
    def for_tokenizer(cls, tokenizer: Any) -> PieceEncoder | None:
        """An encoder equal to ``tokenizer.encode(text, add_special_tokens=False)``, or None
        where this tokenizer's encoding is not the join of its pieces'."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None or getattr(tokenizer, "split_special_tokens", False):
            return None
        if getattr(backend, "encode_special_tokens", False) or backend.truncation or backend.padding:
            return None
        try:
            config = json.loads(backend.to_str())
        except Exception:  # custom Python steps refuse to serialize with a bare Exception
            return None
        if not _steps_are_piece_local(config) or (config.get("model") or {}).get("dropout"):
            return None  # BPE dropout: a random encoding, which remembering would fix to one draw
        raw_matched = [token for token in config.get("added_tokens", []) if not token.get("normalized", True)]
        if not raw_matched or any(
            token.get("lstrip") or token.get("rstrip") or token.get("single_word") for token in raw_matched
        ):
            return None
        encoder = cls(backend, {token["content"]: token["id"] for token in raw_matched})
        return encoder if encoder._agrees_with(tokenizer) else None

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for index, piece in enumerate(self._cutter.split(text)):
            if index % 2:  # the cutter's group: an added token
                ids.append(self._token_ids[piece])
            elif piece:
                ids.extend(self._piece_ids(piece))
        return ids

    def _piece_ids(self, piece: str) -> array[int] | list[int]:
        remembered = self._pieces.get(piece)
        if remembered is not None:
            self._pieces.move_to_end(piece)
            return remembered
        # The batch call, not ``encode``: only it lets go of the GIL while it works, so a long
        # piece on a tokenizer thread does not stop the event loop.
        ids = self._backend.encode_batch([piece], add_special_tokens=False)[0].ids
        if len(piece) <= self._max_piece_chars:  # a long piece is rarely repeated; it is not kept
            self._pieces[piece] = array("i", ids)  # 4 bytes a token id
            if len(self._pieces) > self._remembered:
                self._pieces.popitem(last=False)
        return ids

    def _agrees_with(self, tokenizer: Any) -> bool:
        sample = list(self._token_ids)[:4]
        probes = [*_PROBE_TEXTS, *("".join(pair) for pair in zip(sample, _PROBE_TEXTS, strict=False))]
        probes += [f"{token}{text}{token}{text}" for token in sample for text in _PROBE_TEXTS]
        for text in probes:
            expected = list(tokenizer.encode(text, add_special_tokens=False))
            # Twice: the first encoding remembers the pieces, the second uses them.
            if self.encode(text) != expected or self.encode(text) != expected:
                return False
        self._pieces.clear()
        return True


def _steps_are_piece_local(config: dict[str, Any]) -> bool:
    """Whether normalizing and pre-tokenizing a piece ignores where the piece sits in the text."""

    def steps(node: Any) -> list[dict[str, Any]]:
        if isinstance(node, dict):
            found = [node] if "type" in node else []
            for value in node.values():
                found += steps(value)
            return found
        if isinstance(node, list):
            return [step for value in node for step in steps(value)]
        return []

    for step in steps(config.get("normalizer")) + steps(config.get("pre_tokenizer")):
        if step["type"] == "Metaspace" and step.get("prepend_scheme") not in ("always", "never"):
            return False
    return True
