"""Transform wrappers: rewrite in a tone, translate, redact personal data."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from wrappers.base import Example, Wrapper, WrapperSampling
from wrappers.catalogue.text import bounded_text, prose

__all__ = [
    "Redact",
    "RedactFirstRelease",
    "Rewrite",
    "RewriteFirstRelease",
    "Translate",
    "TranslateFirstRelease",
]

# Inputs are short so the answer fits in max_tokens; answers are bounded in sentences.
SENTENCES = 16
MAX_TEXT = 500
# 1.1.0 versions bound answers in characters (twice the longest input: room for a
# translation that runs longer), so no answer can be cut off.
MAX_ANSWER = 2 * MAX_TEXT


class RewriteFirstRelease(Wrapper):
    name = "rewrite"
    version = "1.0.0"
    description = "Rewrite a short text in a given tone, keeping its meaning."
    task = "transform"

    class Input(BaseModel):
        text: str = Field(min_length=1, max_length=MAX_TEXT)
        tone: Literal["formal", "friendly", "concise", "simple", "persuasive"] = "formal"

    class Output(BaseModel):
        text: Annotated[str, prose(SENTENCES, "the rewritten text")]

    instructions = (
        "You rewrite a text in the requested tone. Keep every fact and the language of the original; "
        "change only the wording. formal: polite and professional. friendly: warm and casual. concise: as "
        "short as possible. simple: plain words for any reader. persuasive: convincing."
    )
    template = "Tone: {{ tone }}\nText: {{ text }}"
    sampling = WrapperSampling(max_tokens=220, frequency_penalty=0.5)
    examples = (
        Example(input={"text": "hey, send me the report asap", "tone": "formal"}),
        Example(
            input={
                "text": "We regret to inform you that your application was not successful.",
                "tone": "friendly",
            }
        ),
        Example(
            input={
                "text": "In the event that you are unable to attend, please let us know.",
                "tone": "concise",
            }
        ),
    )


class TranslateFirstRelease(Wrapper):
    name = "translate"
    version = "1.0.0"
    description = "Translate a short text into a target language."
    task = "transform"

    class Input(BaseModel):
        text: str = Field(min_length=1, max_length=MAX_TEXT)
        target_language: Literal[
            "English", "Spanish", "French", "German", "Italian", "Portuguese", "Dutch", "Chinese", "Japanese"
        ]

    class Output(BaseModel):
        translation: Annotated[str, prose(SENTENCES, "the translated text")]

    instructions = (
        "You translate a text into the target language faithfully, keeping names, numbers and formatting."
    )
    template = "Target language: {{ target_language }}\nText: {{ text }}"
    sampling = WrapperSampling(max_tokens=260, frequency_penalty=0.5)
    examples = (
        Example(input={"text": "Good morning, how are you?", "target_language": "French"}),
        Example(input={"text": "The train leaves at 8 o'clock.", "target_language": "Spanish"}),
        Example(input={"text": "Danke für Ihre Hilfe.", "target_language": "English"}),
    )


class RedactFirstRelease(Wrapper):
    name = "redact"
    version = "1.0.0"
    description = (
        "The text with personal data (names, e-mails, phone numbers, addresses) replaced by [REDACTED]."
    )
    task = "transform"

    class Input(BaseModel):
        text: str = Field(min_length=1, max_length=MAX_TEXT)

    class Output(BaseModel):
        redacted: Annotated[str, prose(SENTENCES, "the text with personal data replaced")]

    instructions = (
        "You copy a text, replacing every piece of personal data (people's names, e-mail addresses, phone "
        "numbers, street addresses, account or ID numbers) with [REDACTED]. Leave everything else unchanged."
    )
    template = "Text: {{ text }}"
    sampling = WrapperSampling(max_tokens=220, frequency_penalty=0.5)
    examples = (
        Example(input={"text": "Please contact Jane Doe at jane.doe@example.com."}),
        Example(input={"text": "Call Bob on +44 20 7946 0958 about the delivery."}),
        Example(input={"text": "The package will arrive on Tuesday."}),
    )


class Rewrite(RewriteFirstRelease):
    version = "1.1.0"

    class Output(BaseModel):
        text: Annotated[str, bounded_text(MAX_ANSWER, "the rewritten text")]

    sampling = WrapperSampling(max_tokens=1024, frequency_penalty=0.5)


class Translate(TranslateFirstRelease):
    version = "1.1.0"

    class Output(BaseModel):
        translation: Annotated[str, bounded_text(MAX_ANSWER, "the translated text")]

    sampling = WrapperSampling(max_tokens=1024, frequency_penalty=0.5)


class Redact(RedactFirstRelease):
    version = "1.1.0"

    class Output(BaseModel):
        redacted: Annotated[str, bounded_text(MAX_ANSWER, "the text with personal data replaced")]

    sampling = WrapperSampling(max_tokens=1024, frequency_penalty=0.5)
