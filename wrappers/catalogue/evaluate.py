"""Evaluation wrappers: grade against a rubric, compare two answers, check a claim against a context."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from wrappers.base import Example, Wrapper, WrapperSampling
from wrappers.catalogue.text import bounded_text, prose

__all__ = [
    "Compare",
    "CompareFirstRelease",
    "FactCheck",
    "FactCheckFirstRelease",
    "Grade",
    "GradeFirstRelease",
]

# 1.1.0 versions bound the free text in characters, so no answer can be cut off; 1.0.0
# bounded it in clause ends only ("an evidence sentence that never ends").
RATIONALE_CHARS = 300


class GradeFirstRelease(Wrapper):
    name = "grade"
    version = "1.0.0"
    description = "Score a response from 1 to 5 against a rubric, with a short rationale."
    task = "evaluate"

    class Input(BaseModel):
        response: str = Field(min_length=1, max_length=10_000, description="The text being graded.")
        rubric: str = Field(min_length=1, max_length=3_000, description="What a good response does.")
        task: str = Field(
            default="", max_length=3_000, description="The question or task the response answers."
        )

    class Output(BaseModel):
        rationale: Annotated[str, prose(6, "Why this score, in one or two sentences.")]
        score: int = Field(ge=1, le=5, description="1 = fails the rubric, 5 = fully meets it.")

    instructions = (
        "You grade a response against a rubric. First explain briefly how the response meets or misses the "
        "rubric, then give a score: 1 fails it, 2 mostly misses it, 3 partly meets it, 4 mostly meets it, "
        "5 fully meets it."
    )
    template = "{% if task %}Task: {{ task }}\n{% endif %}Rubric: {{ rubric }}\nResponse: {{ response }}"
    sampling = WrapperSampling(max_tokens=160, frequency_penalty=0.5)
    examples = (
        Example(
            input={
                "task": "What is the capital of France?",
                "rubric": "Names the correct capital.",
                "response": "Paris.",
            },
        ),
        Example(
            input={
                "rubric": "Is polite and offers a concrete next step.",
                "response": "Whatever. Not my problem.",
            },
        ),
        Example(
            input={
                "task": "Summarise the plot of Romeo and Juliet in one sentence.",
                "rubric": "One sentence; mentions the two families and the tragic ending.",
                "response": "Two young lovers from feuding families in Verona secretly marry and both die tragically.",
            },
        ),
    )


class CompareFirstRelease(Wrapper):
    name = "compare"
    version = "1.0.0"
    description = "Which of two answers to a question is better: a, b or tie, with a short rationale."
    task = "evaluate"

    class Input(BaseModel):
        question: str = Field(min_length=1, max_length=5_000)
        answer_a: str = Field(min_length=1, max_length=10_000)
        answer_b: str = Field(min_length=1, max_length=10_000)
        criteria: str = Field(default="", max_length=2_000, description="What 'better' means here.")

    class Output(BaseModel):
        rationale: Annotated[str, prose(6, "Why, in one or two sentences.")]
        winner: Literal["a", "b", "tie"]

    instructions = (
        "You compare two answers to the same question. Judge correctness first, then helpfulness and clarity; "
        "ignore length and the order the answers are shown in. Explain briefly, then name the winner: "
        "a, b, or tie when they are equally good."
    )
    template = (
        "Question: {{ question }}\n"
        "{% if criteria %}Criteria: {{ criteria }}\n{% endif %}"
        "Answer A: {{ answer_a }}\n"
        "Answer B: {{ answer_b }}"
    )
    sampling = WrapperSampling(max_tokens=160, frequency_penalty=0.5)
    examples = (
        Example(input={"question": "What is 2 + 2?", "answer_a": "4", "answer_b": "5"}),
        Example(
            input={
                "question": "What is the boiling point of water at sea level?",
                "answer_a": "It is 50 degrees Celsius.",
                "answer_b": "100 degrees Celsius (212 °F).",
            }
        ),
        Example(
            input={"question": "Name a primary colour.", "answer_a": "Red.", "answer_b": "Blue."},
        ),
    )


class FactCheckFirstRelease(Wrapper):
    name = "fact_check"
    version = "1.0.0"
    description = (
        "Is a claim supported, contradicted, or not addressed by a given context? With an evidence quote."
    )
    task = "evaluate"

    class Input(BaseModel):
        claim: str = Field(min_length=1, max_length=2_000)
        context: str = Field(min_length=1, max_length=20_000, description="The only source to judge by.")

    class Output(BaseModel):
        evidence: Annotated[str, prose(4, "The sentence of the context that bears on the claim, or 'none'.")]
        verdict: Literal["supported", "contradicted", "not_enough_info"]

    instructions = (
        "You check a claim against a context, using only the context. First quote the sentence of the context "
        "that bears on the claim (or none if there is none), then the verdict: supported if the context says the "
        "claim is true, contradicted if it says it is false, not_enough_info if it does not say."
    )
    template = "Context: {{ context }}\nClaim: {{ claim }}"
    sampling = WrapperSampling(max_tokens=160, frequency_penalty=0.5)
    examples = (
        Example(
            input={
                "context": "The Eiffel Tower is in Paris. It was completed in 1889.",
                "claim": "The Eiffel Tower was completed in 1889.",
            },
            accept={"verdict": ["supported"]},
        ),
        Example(
            input={
                "context": "The meeting was moved from Monday to Wednesday.",
                "claim": "The meeting is on Monday.",
            },
        ),
        Example(
            input={
                "context": "Our shop sells bicycles and helmets.",
                "claim": "The shop is open on Sundays.",
            },
        ),
    )


class Grade(GradeFirstRelease):
    version = "1.1.0"

    class Output(BaseModel):
        rationale: Annotated[str, bounded_text(RATIONALE_CHARS, "Why this score, in one or two sentences.")]
        score: int = Field(ge=1, le=5, description="1 = fails the rubric, 5 = fully meets it.")

    sampling = WrapperSampling(max_tokens=352, frequency_penalty=0.5)


class Compare(CompareFirstRelease):
    version = "1.1.0"

    class Output(BaseModel):
        rationale: Annotated[str, bounded_text(RATIONALE_CHARS, "Why, in one or two sentences.")]
        winner: Literal["a", "b", "tie"]

    sampling = WrapperSampling(max_tokens=352, frequency_penalty=0.5)


class FactCheck(FactCheckFirstRelease):
    version = "1.1.0"

    class Output(BaseModel):
        evidence: Annotated[
            str,
            bounded_text(RATIONALE_CHARS, "The sentence of the context that bears on the claim, or 'none'."),
        ]
        verdict: Literal["supported", "contradicted", "not_enough_info"]

    sampling = WrapperSampling(max_tokens=352, frequency_penalty=0.5)
