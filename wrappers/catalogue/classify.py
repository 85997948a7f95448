"""Classification wrappers: one label out of a set."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from wrappers.base import Example, Wrapper, WrapperSampling

__all__ = ["Classify", "Sentiment"]


class Sentiment(Wrapper):
    name = "sentiment"
    version = "1.0.0"
    description = "Sentiment of a text: positive, negative or neutral."
    task = "classify"

    class Input(BaseModel):
        text: str = Field(min_length=1, max_length=20_000, description="The text to judge.")

    class Output(BaseModel):
        label: Literal["positive", "negative", "neutral"]

    instructions = (
        "You judge the sentiment of a text. positive: the writer is pleased or approving. "
        "negative: the writer is unhappy, angry or disapproving. neutral: neither, or purely factual."
    )
    template = "Text: {{ text }}"
    sampling = WrapperSampling(max_tokens=16)
    examples = (
        Example(input={"text": "I love this phone, the battery lasts for days!"}, expected={"label": "positive"}),
        Example(input={"text": "Terrible service. I waited two hours and nobody helped me."}, expected={"label": "negative"}),
        Example(input={"text": "The meeting is scheduled for 3pm on Tuesday."}, accept={"label": ["neutral", "positive"]}),
    )


class Classify(Wrapper):
    name = "classify"
    version = "1.0.0"
    description = "Put a text into exactly one of the labels given with the call."
    task = "classify"

    class Input(BaseModel):
        text: str = Field(min_length=1, max_length=20_000)
        labels: list[str] = Field(min_length=2, max_length=100, description="The allowed labels.")
        guidance: str = Field(default="", max_length=2_000, description="Optional hints on how to choose.")

        @field_validator("labels")
        @classmethod
        def _distinct(cls, labels: list[str]) -> list[str]:
            if len(set(labels)) != len(labels) or any(not label.strip() or len(label) > 100 for label in labels):
                raise ValueError("labels must be distinct, non-empty and at most 100 characters")
            return labels

    class Output(BaseModel):
        label: str

    instructions = "You classify a text into exactly one of the given labels. Pick the label that fits best."
    template = (
        "Labels: {{ labels | join(', ') }}\n"
        "{% if guidance %}Guidance: {{ guidance }}\n{% endif %}"
        "Text: {{ text }}"
    )
    sampling = WrapperSampling(max_tokens=64)
    examples = (
        Example(
            input={"text": "My card was charged twice for one order.", "labels": ["billing", "shipping", "technical"]},
            expected={"label": "billing"},
        ),
        Example(
            input={"text": "The app crashes whenever I open settings.", "labels": ["billing", "shipping", "technical"]},
            expected={"label": "technical"},
        ),
        Example(
            input={"text": "Where is my parcel? It was due last week.", "labels": ["billing", "shipping", "technical"]},
            expected={"label": "shipping"},
        ),
    )

    @classmethod
    def schema_rule(cls) -> str:
        return "label: enum of input.labels"

    @classmethod
    def output_schema(cls, data: BaseModel) -> dict[str, Any]:
        assert isinstance(data, cls.Input)
        return {
            "type": "object",
            "properties": {"label": {"type": "string", "enum": data.labels}},
            "required": ["label"],
            "additionalProperties": False,
        }
