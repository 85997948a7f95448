"""LangChain's ``ChatOpenAI`` pointed at Wrapserve, unchanged."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from tests.conftest import RunningServer
from tests.openai.conftest import MODEL

langchain_openai = pytest.importorskip("langchain_openai")


class Answer(BaseModel):
    """An answer with a confidence level."""

    answer: str = Field(max_length=40)
    confidence: Literal["low", "medium", "high"]


def _chat(server: RunningServer, **options: object) -> Any:
    return langchain_openai.ChatOpenAI(
        model=MODEL,
        base_url=f"{server.base_url}/v1",
        api_key="unused",
        temperature=0,
        max_tokens=120,
        max_retries=0,
        **options,
    )


def test_with_structured_output_returns_the_model(server: RunningServer) -> None:
    structured = _chat(server).with_structured_output(Answer)
    result = structured.invoke("What is the capital of France?")
    assert isinstance(result, Answer)


def test_with_structured_output_function_calling(server: RunningServer) -> None:
    structured = _chat(server).with_structured_output(Answer, method="function_calling")
    result = structured.invoke("What is the capital of France?")
    assert isinstance(result, Answer)


def test_plain_invoke_and_stream(server: RunningServer) -> None:
    chat = _chat(server)
    message = chat.invoke("Say hi.")
    assert isinstance(message.content, str) and message.content
    pieces = [chunk.content for chunk in chat.stream("Say hi.")]
    assert "".join(pieces) == message.content


def test_with_structured_output_on_the_responses_api(server: RunningServer) -> None:
    chat = _chat(server, use_responses_api=True)
    result = chat.with_structured_output(Answer).invoke("What is the capital of France?")
    assert isinstance(result, Answer)
    reply = chat.invoke("Say hello.")
    assert reply.text
