"""The system turn padded to whole KV blocks, so vLLM's prefix cache serves all of it.

The layout is checked with the model's own tokenizer and chat template (no engine), then
end to end: the cached prompt tokens vLLM reports for real calls are the whole padded
turn, also for texts whose first token no call has sent before.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.engine import CPU_BLOCK_SIZE
from server.prefix_layout import PAD_UNIT, ChatLayout, system_padding
from wrappers.catalogue import BUILTINS

MODEL_DIR = Path.home() / ".cache" / "wrapserve" / "models" / "smollm2-135m-instruct"


def padded_turn_tokens(layout: ChatLayout, system: str) -> int:
    padded = {"role": "system", "content": system + layout.padding(system)}
    return len(layout.encode(layout.render([padded], False)))


@pytest.fixture(scope="module")
def layout() -> ChatLayout:
    from transformers import AutoTokenizer

    return ChatLayout(AutoTokenizer.from_pretrained(MODEL_DIR), None, CPU_BLOCK_SIZE)


@pytest.mark.parametrize("block_size", [16, 32])
@pytest.mark.parametrize("wrapper", BUILTINS, ids=lambda w: w.ref())
def test_every_wrappers_system_turn_ends_on_a_block_boundary(
    layout: ChatLayout, wrapper: Any, block_size: int
) -> None:
    system, user = wrapper.messages(wrapper.Input.model_validate(wrapper.examples[0].input))
    padding = system_padding(system.content, block_size, layout.render, layout.encode)
    units = len(padding) // len(PAD_UNIT)
    assert padding == PAD_UNIT * units and units < block_size
    chat = [
        {"role": "system", "content": system.content + padding},
        {"role": "user", "content": user.content},
    ]
    turn = layout.encode(layout.render(chat[:1], False))
    assert len(turn) % block_size == 0
    # The padded turn is exactly the prompt's opening: the user turn starts on the boundary.
    assert layout.encode(layout.render(chat, True))[: len(turn)] == turn


def test_encode_chat_pads_only_when_asked_and_only_a_leading_system_turn(layout: ChatLayout) -> None:
    chat = [{"role": "system", "content": "You judge things."}, {"role": "user", "content": "Text: hi"}]
    plain, aligned = layout.encode_chat(chat), layout.encode_chat(chat, align_system=True)
    assert len(aligned) > len(plain)
    assert layout.encode_chat(chat[1:], align_system=True) == layout.encode_chat(chat[1:])
    no_cache = ChatLayout(layout.tokenizer, None, None)
    assert no_cache.encode_chat(chat, align_system=True) == plain


def test_a_template_that_folds_the_system_turn_into_the_user_turn_is_left_alone(layout: ChatLayout) -> None:
    folding = ChatLayout(
        layout.tokenizer,
        "{% for m in messages %}{% if m.role == 'user' %}<|im_start|>user\n"
        "{{ messages[0].content }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        32,
    )
    assert folding.padding("You judge things.") == ""


def test_a_template_that_refuses_a_system_only_chat_is_left_alone(layout: ChatLayout) -> None:
    strict = ChatLayout(
        layout.tokenizer,
        "{% if messages|length < 2 %}{{ raise_exception('a user turn is required') }}{% endif %}"
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}",
        32,
    )
    assert strict.padding("You judge things.") == ""


def _invoke(http: httpx.Client, name: str, data: dict[str, object]) -> dict[str, Any]:
    response = http.post(f"/v1/wrappers/{name}/invoke", json={"input": data})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_calls_get_the_whole_system_turn_from_the_prefix_cache(
    http: httpx.Client, layout: ChatLayout
) -> None:
    """Texts that start with tokens no earlier call sent: unpadded, the block holding the
    turn's tail would be recomputed for each of them."""
    sentiment = next(w for w in BUILTINS if w.name == "sentiment")
    turn = padded_turn_tokens(layout, sentiment.system_prompt())
    for _ in range(3):
        body = _invoke(http, "sentiment", {"text": f"{uuid.uuid4().hex} said the order came late."})
        assert body["usage"]["cached_prompt_tokens"] == turn, body["usage"]


def test_calls_sharing_a_label_set_share_it_from_the_prefix_cache(
    http: httpx.Client, layout: ChatLayout
) -> None:
    # A set no call has used, with distinct first tokens: labels whose first tokens collide
    # are scored from prompt log-probs, and vLLM does not read the prefix cache for those.
    tag = uuid.uuid4().hex[:8]
    labels = [f"{word}-{tag}" for word in ("billing", "shipping", "technical", "other")]
    classify = next(w for w in BUILTINS if w.ref() == "classify@1.1.0")
    system, _ = classify.messages(classify.Input(text="x", labels=labels))
    turn = padded_turn_tokens(layout, system.content)
    first = _invoke(http, "classify", {"text": f"{uuid.uuid4().hex} wants a refund.", "labels": labels})
    assert first["version"] == "1.1.0"
    assert first["usage"]["cached_prompt_tokens"] < turn  # the label set was new
    second = _invoke(http, "classify", {"text": f"{uuid.uuid4().hex} cannot log in.", "labels": labels})
    assert second["usage"]["cached_prompt_tokens"] == turn, second["usage"]
    assert second["output"]["label"] in labels


def test_the_first_classify_release_keeps_its_prompt(http: httpx.Client) -> None:
    labels = ["billing", "shipping", "technical"]
    pinned = http.post(
        "/v1/wrappers/classify/invoke",
        json={"input": {"text": "My card was charged twice.", "labels": labels}, "version": "1.0.0"},
    )
    assert pinned.status_code == 200, pinned.text
    body = pinned.json()
    assert body["version"] == "1.0.0" and body["output"]["label"] in labels
    latest = _invoke(http, "classify", {"text": "My card was charged twice.", "labels": labels})
    assert latest["fingerprint"] != body["fingerprint"]
