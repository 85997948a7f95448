"""Wrappers appear as models and run through the chat endpoint with their guarantees."""

from __future__ import annotations

import json

import openai
import pytest
from pydantic import BaseModel

from tests.openai.conftest import MODEL
from wrappers.catalogue.classify import Sentiment

LABELS = {"positive", "negative", "neutral"}


class SentimentOut(BaseModel):
    label: str


def test_models_lists_the_model_and_every_wrapper(client: openai.OpenAI) -> None:
    ids = {model.id for model in client.models.list()}
    assert MODEL in ids
    assert {"wrapper:sentiment", "wrapper:sentiment@1.0.0", "wrapper:classify", "wrapper:extract"} <= ids


@pytest.mark.parametrize(
    "content", ["I really love this, great job!", json.dumps({"text": "I really love this, great job!"})]
)
def test_sentiment_with_plain_text_or_json(client: openai.OpenAI, content: str) -> None:
    completion = client.chat.completions.create(
        model="wrapper:sentiment", messages=[{"role": "user", "content": content}]
    )
    assert completion.model == f"wrapper:{Sentiment.ref()}"
    assert (completion.system_fingerprint or "").startswith("sha256:")
    assert json.loads(completion.choices[0].message.content or "")["label"] in LABELS
    assert completion.usage is not None and completion.usage.prompt_tokens > 0


def test_pinned_version_and_parse(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model="wrapper:sentiment@1.0.0",
        messages=[{"role": "user", "content": "The food was cold and the waiter rude."}],
        response_format=SentimentOut,
    )
    parsed = completion.choices[0].message.parsed
    assert parsed is not None and parsed.label in LABELS


def test_wrapper_with_object_input(client: openai.OpenAI) -> None:
    labels = ["sports", "weather", "cooking"]
    completion = client.chat.completions.create(
        model="wrapper:classify",
        messages=[
            {"role": "user", "content": json.dumps({"text": "Heavy rain tomorrow.", "labels": labels})}
        ],
    )
    assert json.loads(completion.choices[0].message.content or "")["label"] in labels


def test_wrapper_streams_its_answer(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="wrapper:sentiment",
        messages=[{"role": "user", "content": "Wonderful day!"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert json.loads(text)["label"] in LABELS
    assert chunks[-1].usage is not None and len({chunk.id for chunk in chunks}) == 1


def test_wrapper_input_errors(client: openai.OpenAI) -> None:
    # classify has more than one field: plain text is not enough.
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="wrapper:classify", messages=[{"role": "user", "content": "hi"}])
    # A field of the wrong shape names the field.
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.chat.completions.create(
            model="wrapper:classify",
            messages=[{"role": "user", "content": json.dumps({"text": "x", "labels": ["one"]})}],
        )
    assert caught.value.body["param"] == "input.labels"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="wrapper:sentiment", messages=[{"role": "user", "content": "ok"}], n=2
        )
