"""The prefix wrapper calls share padded to whole KV blocks, so vLLM's prefix cache serves all of it.

That prefix is the system turn, the user turn's opening and the literal start of the user
message. The layout is checked with the model's own tokenizer and chat template (no
engine), then end to end: the cached prompt tokens vLLM reports for real calls are the
whole shared prefix, also for texts whose first token no call has sent before.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.vllm.args import CPU_BLOCK_SIZE
from server.vllm.prefix_layout import PAD_UNIT, ChatLayout, Paddings, system_padding
from wrappers.catalogue import BUILTINS
from wrappers.catalogue.classify import Classify

MODEL_DIR = Path.home() / ".cache" / "wrapserve" / "models" / "smollm2-135m-instruct"


def common_prefix(first: list[int], second: list[int]) -> int:
    differ = (i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    return next(differ, min(len(first), len(second)))


def shared_prefix_tokens(layout: ChatLayout, system: str, user_head: str) -> int:
    """Tokens two padded prompts with different user texts share."""
    padded = {"role": "system", "content": system + layout.padding(system, user_head)}
    first, second = (
        layout.encode(layout.render([padded, {"role": "user", "content": user_head + text}], True))
        for text in ("apple pie", "Zebra crossing")
    )
    return common_prefix(first, second)


@pytest.fixture(scope="module")
def layout() -> ChatLayout:
    from transformers import AutoTokenizer

    return ChatLayout(AutoTokenizer.from_pretrained(MODEL_DIR), None, CPU_BLOCK_SIZE)


def test_a_found_padding_is_shared_by_the_layouts_of_one_tokenizer(layout: ChatLayout) -> None:
    """What lets a later call tokenize on the event loop: one render and one encode there."""
    paddings = Paddings()
    first, second = (ChatLayout(layout.tokenizer, None, CPU_BLOCK_SIZE, paddings) for _ in range(2))
    chat = [
        {"role": "system", "content": f"Sort mail. {uuid.uuid4()}"},
        {"role": "user", "content": "Text: hi"},
    ]
    assert not second.padding_known(chat, "Text: ")
    assert second.padding_known(chat, None)  # nothing to align: never a search
    encoded = first.encode_chat(chat, '{"a":', "Text: ")
    assert second.padding_known(chat, "Text: ")
    assert second.encode_chat(chat, '{"a":', "Text: ") == encoded
    padding = paddings.get(chat[0]["content"], "Text: ")
    assert padding is not None
    padded = [{**chat[0], "content": chat[0]["content"] + padding}, chat[1]]
    assert encoded == layout.encode(layout.render(padded, True) + '{"a":')


@pytest.mark.parametrize("block_size", [16, 32])
@pytest.mark.parametrize("wrapper", BUILTINS, ids=lambda w: w.ref())
def test_every_wrappers_shared_prefix_ends_on_a_block_boundary(
    layout: ChatLayout, wrapper: Any, block_size: int
) -> None:
    system, user = wrapper.messages(wrapper.Input.model_validate(wrapper.examples[0].input))
    head = wrapper.user_head()
    assert user.content.startswith(head)
    padding = system_padding(system.content, block_size, layout.render, layout.encode, head)
    units = len(padding) // len(PAD_UNIT)
    assert padding == PAD_UNIT * units and units < block_size
    padded = {"role": "system", "content": system.content + padding}
    prompt = layout.encode(layout.render([padded, {"role": "user", "content": user.content}], True))
    other = layout.encode(layout.render([padded, {"role": "user", "content": f"{head}Zebra 42"}], True))
    shared = common_prefix(prompt, other)
    # The boundary falls where the shared prefix ends, or a token before it where the
    # head's last token could merge with some text (a newline with a newline).
    assert shared % block_size in (0, 1)
    cached = shared - shared % block_size
    # All of it static: the padded system turn, the user turn's opening and the head.
    turn = layout.encode(layout.render([padded], False))
    assert prompt[: len(turn)] == turn and cached > len(turn)
    assert layout.tokenizer.decode(prompt[:cached]).rstrip().endswith(f"user\n{head}".rstrip())


def test_encode_chat_pads_only_when_asked_and_only_a_leading_system_turn(layout: ChatLayout) -> None:
    chat = [{"role": "system", "content": "You judge things."}, {"role": "user", "content": "Text: hi"}]
    plain, aligned = layout.encode_chat(chat), layout.encode_chat(chat, align_through="Text: ")
    assert len(aligned) > len(plain)
    assert layout.encode_chat(chat[1:], align_through="") == layout.encode_chat(chat[1:])
    no_cache = ChatLayout(layout.tokenizer, None, None)
    assert no_cache.encode_chat(chat, align_through="") == plain


def test_a_template_that_folds_the_system_text_into_the_user_turn_is_aligned_too(layout: ChatLayout) -> None:
    folding = ChatLayout(
        layout.tokenizer,
        "{% for m in messages %}{% if m.role == 'user' %}<|im_start|>user\n"
        "{{ messages[0].content }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        32,
    )
    system = "You judge things."
    assert folding.padding(system, "Text: ")
    assert shared_prefix_tokens(folding, system, "Text: ") % 32 == 0


@pytest.mark.parametrize(
    "template",
    [
        # refuses a system turn
        "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system turns') }}{% endif %}"
        "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}",
        # renders the system text after the user's, where no padding can end the shared prefix
        "{% for m in messages|reverse %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}",
    ],
    ids=["refuses-system", "system-last"],
)
def test_a_template_where_padding_cannot_help_is_left_alone(layout: ChatLayout, template: str) -> None:
    other = ChatLayout(layout.tokenizer, template, 32)
    assert other.padding("You judge things.", "Text: ") == ""
    chat = [{"role": "system", "content": "You judge things."}, {"role": "user", "content": "Text: hi"}]
    if "raise_exception" not in template:
        assert other.encode_chat(chat, align_through="Text: ") == other.encode_chat(chat)


def _invoke(http: httpx.Client, name: str, data: dict[str, object]) -> dict[str, Any]:
    response = http.post(f"/v1/wrappers/{name}/invoke", json={"input": data})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_calls_get_the_whole_shared_prefix_from_the_prefix_cache(
    http: httpx.Client, layout: ChatLayout
) -> None:
    """Texts that start with tokens no earlier call sent: unpadded, the block holding the
    shared prefix's tail would be recomputed for each of them."""
    sentiment = next(w for w in BUILTINS if w.name == "sentiment")
    shared = shared_prefix_tokens(layout, sentiment.system_prompt(), sentiment.user_head())
    turn = len(
        layout.encode(layout.render([{"role": "system", "content": sentiment.system_prompt()}], False))
    )
    assert shared > turn  # the user turn's opening and "Text:" come from the cache too
    for _ in range(3):
        body = _invoke(http, "sentiment", {"text": f"{uuid.uuid4().hex} said the order came late."})
        assert body["usage"]["cached_prompt_tokens"] == shared, body["usage"]


def test_calls_sharing_a_label_set_share_it_from_the_prefix_cache(
    http: httpx.Client, layout: ChatLayout
) -> None:
    # A set no call has used.
    tag = uuid.uuid4().hex[:8]
    labels = [f"{word}-{tag}" for word in ("billing", "shipping", "technical", "other")]
    classify = Classify  # the latest, which a call without a version gets
    system, _ = classify.messages(classify.Input(text="x", labels=labels))
    turn = shared_prefix_tokens(layout, system.content, classify.user_head())
    first = _invoke(http, "classify", {"text": f"{uuid.uuid4().hex} wants a refund.", "labels": labels})
    assert first["version"] == classify.version
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


def test_labels_sharing_a_start_are_scored_with_the_prompt_from_the_cache(
    http: httpx.Client, layout: ChatLayout
) -> None:
    """ "very good" and "very bad" branch after "very": one more engine step, on the prompt
    extended by it, and every step reads the prompt from the prefix cache."""
    tag = uuid.uuid4().hex[:8]
    labels = [f"very good {tag}", f"very bad {tag}", f"okay {tag}"]
    classify = Classify  # the latest, which a call without a version gets
    system, _ = classify.messages(classify.Input(text="x", labels=labels))
    shared = shared_prefix_tokens(layout, system.content, classify.user_head())
    _invoke(http, "classify", {"text": f"{uuid.uuid4().hex} loved it.", "labels": labels})
    for text in ("The food was wonderful.", "The food was awful."):
        body = _invoke(http, "classify", {"text": f"{uuid.uuid4().hex}: {text}", "labels": labels})
        scores = body["scores"]
        assert set(scores) == set(labels)
        assert abs(sum(scores.values()) - 1.0) < 1e-4
        assert all(0.0 < p < 1.0 for p in scores.values())
        assert body["output"]["label"] == max(scores, key=scores.__getitem__)
        assert body["usage"]["cached_prompt_tokens"] == shared, body["usage"]
