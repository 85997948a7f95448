"""Classification wrappers: one label out of a set (sentiment, labels, intents, language)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from wrappers.base import EvalSpec, Example, Wrapper, WrapperSampling

__all__ = [
    "Classify",
    "ClassifyFirstRelease",
    "ClassifySecondRelease",
    "DetectLanguage",
    "DetectLanguageFirstRelease",
    "Intent",
    "IntentFirstRelease",
    "IntentSecondRelease",
    "Sentiment",
    "SentimentFirstRelease",
]

# The latest versions' max_tokens fit the longest answer their grammar admits (in
# characters), so even a decoded answer (``options.decode``, or no forced prefix) can
# never be cut off; the first releases' budgets were a few characters short.

Language = Literal[
    "en",
    "es",
    "fr",
    "de",
    "it",
    "pt",
    "nl",
    "sv",
    "da",
    "no",
    "fi",
    "pl",
    "cs",
    "ro",
    "hu",
    "el",
    "ru",
    "uk",
    "tr",
    "ar",
    "he",
    "fa",
    "hi",
    "bn",
    "zh",
    "ja",
    "ko",
    "vi",
    "th",
    "id",
]


class SentimentFirstRelease(Wrapper):
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
    evals = EvalSpec(sets=("evals/sentiment.jsonl",))  # every version runs the same set
    examples = (
        Example(
            input={"text": "I love this phone, the battery lasts for days!"}, expected={"label": "positive"}
        ),
        Example(
            input={"text": "Terrible service. I waited two hours and nobody helped me."},
            expected={"label": "negative"},
        ),
        Example(
            input={"text": "The meeting is scheduled for 3pm on Tuesday."},
            accept={"label": ["neutral", "positive"]},
        ),
    )


class ClassifySecondRelease(Wrapper):
    name = "classify"
    version = "1.1.0"
    description = "Put a text into exactly one of the labels given with the call."
    task = "classify"

    class Input(BaseModel):
        text: str = Field(min_length=1, max_length=20_000)
        labels: list[str] = Field(min_length=2, max_length=100, description="The allowed labels.")
        guidance: str = Field(default="", max_length=2_000, description="Optional hints on how to choose.")

        @field_validator("labels")
        @classmethod
        def _distinct(cls, labels: list[str]) -> list[str]:
            if len(set(labels)) != len(labels) or any(
                not label.strip() or len(label) > 100 for label in labels
            ):
                raise ValueError("labels must be distinct, non-empty and at most 100 characters")
            return labels

    class Output(BaseModel):
        label: str

    instructions = "You classify a text into exactly one of the given labels. Pick the label that fits best."
    # 1.1.0: the labels (and guidance) close the system turn, so calls that share a label
    # set share its prompt prefix in the KV cache; 1.0.0 sent them with the text.
    context_template = (
        "Labels: {{ labels | join(', ') }}{% if guidance %}\nGuidance: {{ guidance }}{% endif %}"
    )
    template = "Text: {{ text }}"
    sampling = WrapperSampling(max_tokens=64)
    evals = EvalSpec(sets=("evals/classify.jsonl",))  # every version runs the same set
    examples = (
        Example(
            input={
                "text": "My card was charged twice for one order.",
                "labels": ["billing", "shipping", "technical"],
            },
            expected={"label": "billing"},
        ),
        Example(
            input={
                "text": "The app crashes whenever I open settings.",
                "labels": ["billing", "shipping", "technical"],
            },
            expected={"label": "technical"},
        ),
        Example(
            input={
                "text": "Where is my parcel? It was due last week.",
                "labels": ["billing", "shipping", "technical"],
            },
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


class ClassifyFirstRelease(ClassifySecondRelease):
    """classify@1.0.0, kept so that callers pinned to it get the prompt it was released with."""

    version = "1.0.0"
    context_template = ""
    template = (
        "Labels: {{ labels | join(', ') }}\n"
        "{% if guidance %}Guidance: {{ guidance }}\n{% endif %}"
        "Text: {{ text }}"
    )


class IntentSecondRelease(Wrapper):
    name = "intent"
    version = "1.1.0"
    description = "Route a user message to one of the intents given with the call (or 'other')."
    task = "classify"

    class Input(BaseModel):
        message: str = Field(min_length=1, max_length=5_000, description="The user's message.")
        intents: dict[str, str] = Field(
            min_length=1, max_length=50, description="Intent name -> what it covers (may be empty)."
        )

        @field_validator("intents")
        @classmethod
        def _names(cls, intents: dict[str, str]) -> dict[str, str]:
            for intent, meaning in intents.items():
                if not intent.strip() or len(intent) > 64 or len(meaning) > 300:
                    raise ValueError(
                        "intent names must be non-empty, at most 64 characters; meanings at most 300"
                    )
            if "other" in intents:
                raise ValueError("'other' is reserved for messages that fit no intent")
            return intents

    class Output(BaseModel):
        intent: str

    instructions = (
        "You route a user's message to the intent it expresses. Choose exactly one of the listed intents; "
        "choose 'other' only when none of them fits."
    )
    # 1.1.0: the intents close the system turn (shared through the prefix cache by every
    # call with the same intents); 1.0.0 sent them with the message.
    context_template = "Intents:{% for intent, meaning in intents.items() %}\n- {{ intent }}{% if meaning %}: {{ meaning }}{% endif %}{% endfor %}"
    template = "Message: {{ message }}"
    sampling = WrapperSampling(max_tokens=32)
    evals = EvalSpec(sets=("evals/intent.jsonl",))  # every version runs the same set
    examples = (
        Example(
            input={
                "message": "I want to cancel my subscription today.",
                "intents": {
                    "cancel_subscription": "stop a plan",
                    "track_order": "where a parcel is",
                    "reset_password": "",
                },
            },
            accept={"intent": ["cancel_subscription"]},
        ),
        Example(
            input={
                "message": "I forgot my password and cannot log in.",
                "intents": {
                    "cancel_subscription": "stop a plan",
                    "track_order": "where a parcel is",
                    "reset_password": "",
                },
            },
            accept={"intent": ["reset_password"]},
        ),
        Example(
            input={
                "message": "Has my package shipped yet?",
                "intents": {
                    "cancel_subscription": "stop a plan",
                    "track_order": "where a parcel is",
                    "reset_password": "",
                },
            },
            accept={"intent": ["track_order"]},
        ),
    )

    @classmethod
    def schema_rule(cls) -> str:
        return "intent: enum of the input's intent names, plus 'other'"

    @classmethod
    def output_schema(cls, data: BaseModel) -> dict[str, Any]:
        assert isinstance(data, cls.Input)
        return {
            "type": "object",
            "properties": {"intent": {"type": "string", "enum": [*data.intents, "other"]}},
            "required": ["intent"],
            "additionalProperties": False,
        }


class DetectLanguageFirstRelease(Wrapper):
    name = "language"
    version = "1.0.0"
    description = "The language a text is written in, as an ISO 639-1 code."
    task = "classify"

    class Input(BaseModel):
        text: str = Field(min_length=1, max_length=5_000)

    class Output(BaseModel):
        language: Language = Field(description="ISO 639-1 code")

    instructions = (
        "You identify the language a text is written in and answer with its ISO 639-1 code "
        "(en English, es Spanish, fr French, de German, it Italian, pt Portuguese, nl Dutch, ru Russian, "
        "zh Chinese, ja Japanese, ...). For a mixed text, choose the language of most of it."
    )
    template = "Text: {{ text }}"
    sampling = WrapperSampling(max_tokens=16)
    examples = (
        Example(
            input={"text": "The weather is lovely today and we are going to the beach."},
            expected={"language": "en"},
        ),
        Example(
            input={"text": "Bonjour, je voudrais réserver une table pour deux personnes ce soir."},
            accept={"language": ["fr"]},
        ),
        Example(
            input={"text": "Ich habe heute keine Zeit, weil ich arbeiten muss."}, accept={"language": ["de"]}
        ),
        Example(input={"text": "¿Dónde está la estación de tren más cercana?"}, accept={"language": ["es"]}),
    )


class IntentFirstRelease(IntentSecondRelease):
    """intent@1.0.0, kept so that callers pinned to it get the prompt it was released with."""

    version = "1.0.0"
    context_template = ""
    template = (
        "Intents:\n{% for intent, meaning in intents.items() %}- {{ intent }}{% if meaning %}: {{ meaning }}{% endif %}\n{% endfor %}"
        "Message: {{ message }}"
    )


def _printable(values: list[str], what: str) -> list[str]:
    """No control characters: each is six characters in the JSON answer (``\\u0007``),
    which would put the longest answer beyond max_tokens."""
    if any(ord(char) < 32 for value in values for char in value):
        raise ValueError(f"{what} must not contain control characters")
    return values


class Sentiment(SentimentFirstRelease):
    version = "1.1.0"
    sampling = WrapperSampling(max_tokens=24)


class Classify(ClassifySecondRelease):
    """classify@1.2.0: labels without control characters, and room for the longest one."""

    version = "1.2.0"

    class Input(ClassifySecondRelease.Input):
        @field_validator("labels")
        @classmethod
        def _printable_labels(cls, labels: list[str]) -> list[str]:
            return _printable(labels, "labels")

    sampling = WrapperSampling(max_tokens=224)


class Intent(IntentSecondRelease):
    """intent@1.2.0: intent names without control characters, and room for the longest one."""

    version = "1.2.0"

    class Input(IntentSecondRelease.Input):
        @field_validator("intents")
        @classmethod
        def _printable_names(cls, intents: dict[str, str]) -> dict[str, str]:
            _printable(list(intents), "intent names")
            return intents

    sampling = WrapperSampling(max_tokens=160)


class DetectLanguage(DetectLanguageFirstRelease):
    version = "1.1.0"
    sampling = WrapperSampling(max_tokens=24)
