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
from server.prefix_layout import PAD_UNIT, system_padding
from wrappers.catalogue import BUILTINS

MODEL_DIR = Path.home() / ".cache" / "wrapserve" / "models" / "smollm2-135m-instruct"


class Template:
    """The model's chat template as the engine applies it: render and encode."""

    def __init__(self, tokenizer: Any, chat_template: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.chat_template = chat_template

    def render(self, chat: list[dict[str, str]], generation_prompt: bool) -> str:
        return str(
            self.tokenizer.apply_chat_template(
                chat,
                tokenize=False,
                add_generation_prompt=generation_prompt,
                chat_template=self.chat_template,
            )
        )

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def padded_turn_tokens(self, system: str, block_size: int = CPU_BLOCK_SIZE) -> int:
        padding = system_padding(system, block_size, self.render, self.encode)
        return len(self.encode(self.render([{"role": "system", "content": system + padding}], False)))


@pytest.fixture(scope="module")
def template() -> Template:
    from transformers import AutoTokenizer

    return Template(AutoTokenizer.from_pretrained(MODEL_DIR))


@pytest.mark.parametrize("block_size", [16, 32])
@pytest.mark.parametrize("wrapper", BUILTINS, ids=lambda w: w.ref())
def test_every_wrappers_system_turn_ends_on_a_block_boundary(
    template: Template, wrapper: Any, block_size: int
) -> None:
    system, user = wrapper.messages(wrapper.Input.model_validate(wrapper.examples[0].input))
    padding = system_padding(system.content, block_size, template.render, template.encode)
    units = len(padding) // len(PAD_UNIT)
    assert padding == PAD_UNIT * units and units < block_size
    chat = [
        {"role": "system", "content": system.content + padding},
        {"role": "user", "content": user.content},
    ]
    turn = template.encode(template.render(chat[:1], False))
    assert len(turn) % block_size == 0
    # The padded turn is exactly the prompt's opening: the user turn starts on the boundary.
    assert template.encode(template.render(chat, True))[: len(turn)] == turn


def test_a_template_that_folds_the_system_turn_into_the_user_turn_is_left_alone(template: Template) -> None:
    folding = Template(
        template.tokenizer,
        "{% for m in messages %}{% if m.role == 'user' %}<|im_start|>user\n"
        "{{ messages[0].content }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    )
    assert system_padding("You judge things.", 32, folding.render, folding.encode) == ""


def test_a_template_that_refuses_a_system_only_chat_is_left_alone(template: Template) -> None:
    strict = Template(
        template.tokenizer,
        "{% if messages|length < 2 %}{{ raise_exception('a user turn is required') }}{% endif %}"
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}",
    )
    assert system_padding("You judge things.", 32, strict.render, strict.encode) == ""


def _invoke(http: httpx.Client, name: str, data: dict[str, object]) -> dict[str, Any]:
    response = http.post(f"/v1/wrappers/{name}/invoke", json={"input": data})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_calls_get_the_whole_system_turn_from_the_prefix_cache(
    http: httpx.Client, template: Template
) -> None:
    """Texts that start with tokens no earlier call sent: unpadded, the block holding the
    turn's tail would be recomputed for each of them."""
    sentiment = next(w for w in BUILTINS if w.name == "sentiment")
    turn = template.padded_turn_tokens(sentiment.system_prompt())
    for _ in range(3):
        body = _invoke(http, "sentiment", {"text": f"{uuid.uuid4().hex} said the order came late."})
        assert body["usage"]["cached_prompt_tokens"] == turn, body["usage"]


def test_calls_sharing_a_label_set_share_it_from_the_prefix_cache(
    http: httpx.Client, template: Template
) -> None:
    # A set no call has used, with distinct first tokens: labels whose first tokens collide
    # are scored from prompt log-probs, and vLLM does not read the prefix cache for those.
    tag = uuid.uuid4().hex[:8]
    labels = [f"{word}-{tag}" for word in ("billing", "shipping", "technical", "other")]
    classify = next(w for w in BUILTINS if w.ref() == "classify@1.1.0")
    system, _ = classify.messages(classify.Input(text="x", labels=labels))
    turn = template.padded_turn_tokens(system.content)
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
