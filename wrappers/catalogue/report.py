"""Report wrappers: a structured report or a summary of a text, as bounded lists of bounded strings."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from wrappers.base import Example, Wrapper, WrapperSampling
from wrappers.catalogue.text import WORD_CHAR, bounded_phrase, bounded_text, phrase, prose

__all__ = ["Report", "ReportFirstRelease", "Summarize", "SummarizeFirstRelease"]

Point = Annotated[str, prose(3, "one short sentence")]
# 1.1.0 versions: bounded in characters and items, so no answer can be cut off; 1.0.0
# bounded points in clause ends only, and about 9% of its answers ran to the token limit.
BoundedPoint = Annotated[str, bounded_text(160, "one short sentence")]


class ReportFirstRelease(Wrapper):
    name = "report"
    version = "1.0.0"
    description = "A structured report of a text: title, key points, risks and actions."
    task = "report"

    class Input(BaseModel):
        text: str = Field(min_length=1, max_length=30_000)
        audience: str = Field(default="", max_length=200, description="Who the report is for.")

    class Output(BaseModel):
        title: Annotated[str, phrase(5, "a few words")]
        key_points: list[Point] = Field(min_length=1)
        risks: list[Point]
        actions: list[Point]

    instructions = (
        "You write a short structured report of a text. title: a few words. key_points: the main facts, one "
        "short sentence each. risks: problems or dangers the text mentions or implies (empty if none). actions: "
        "concrete next steps it calls for (empty if none). Use only what the text says.\n"
        'Example: "Sales fell 5% in May. The supplier is late again. We should find a second supplier." -> '
        '{"title":"May sales and supply","key_points":["Sales fell 5% in May.","The supplier is late again."],'
        '"risks":["Supply delays may continue."],"actions":["Find a second supplier."]}'
    )
    template = "{% if audience %}Audience: {{ audience }}\n{% endif %}Text: {{ text }}"
    sampling = WrapperSampling(max_tokens=600, frequency_penalty=0.5)
    examples = (
        Example(
            input={
                "text": "The server migration finished on Friday. Two services still use the old database, "
                "and backups have not been tested. The team should test restores next week."
            }
        ),
        Example(
            input={
                "text": "Quarterly sales rose 12%, led by the new subscription plan. Churn increased slightly "
                "in Europe. Marketing proposes a retention campaign.",
                "audience": "executives",
            }
        ),
        Example(input={"text": "The office will be closed on Monday for a public holiday."}),
    )


class SummarizeFirstRelease(Wrapper):
    name = "summarize"
    version = "1.0.0"
    description = "A summary of a text in at most about three sentences."
    task = "report"

    class Input(BaseModel):
        text: str = Field(min_length=1, max_length=30_000)

    class Output(BaseModel):
        summary: Annotated[str, prose(8, "one to three sentences")]

    instructions = (
        "You summarise a text in one to three sentences, keeping its main facts and adding nothing."
    )
    template = "Text: {{ text }}"
    sampling = WrapperSampling(max_tokens=160, frequency_penalty=0.5)
    examples = (
        Example(
            input={
                "text": "The city council approved a new bike lane on Main Street. Construction starts in April "
                "and will take three months. Parking on one side of the street will be removed."
            }
        ),
        Example(
            input={
                "text": "Water boils at 100 degrees Celsius at sea level, and at lower temperatures at altitude."
            }
        ),
        Example(
            input={
                "text": "Our support team answered 1,200 tickets in March, 20% more than in February. "
                "Average response time fell to four hours."
            }
        ),
    )


class Report(ReportFirstRelease):
    version = "1.1.0"

    class Output(BaseModel):
        title: Annotated[str, bounded_phrase(6, 20, "a few words", char=WORD_CHAR)]
        key_points: list[BoundedPoint] = Field(min_length=1, max_length=5)
        risks: list[BoundedPoint] = Field(max_length=3)
        actions: list[BoundedPoint] = Field(max_length=3)

    sampling = WrapperSampling(max_tokens=1984, frequency_penalty=0.5)


class Summarize(SummarizeFirstRelease):
    version = "1.1.0"

    class Output(BaseModel):
        summary: Annotated[str, bounded_text(480, "one to three sentences")]

    sampling = WrapperSampling(max_tokens=512, frequency_penalty=0.5)
