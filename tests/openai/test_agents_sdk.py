"""The openai-agents SDK on its default model (the Responses API), pointed at Wrapserve:
an agent with a pydantic ``output_type`` gets a validated object, and one with a function
tool calls it and answers."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel, Field

from tests.conftest import RunningServer
from tests.openai.conftest import MODEL

agents = pytest.importorskip("agents")


class Animal(BaseModel):
    name: str = Field(max_length=40)
    legs: int = Field(ge=0, le=1000)


def _run(server: RunningServer, agent: object, prompt: str) -> object:
    import openai

    async def run() -> object:
        client = openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
        agents.set_tracing_disabled(True)  # nothing leaves the machine
        model = agents.OpenAIResponsesModel(model=MODEL, openai_client=client)
        runnable = agent.clone(model=model)  # type: ignore[attr-defined]
        try:
            return await agents.Runner.run(runnable, prompt, max_turns=4)
        finally:
            await client.close()

    return asyncio.run(run())


def test_an_agent_with_an_output_type_gets_a_valid_object(server: RunningServer) -> None:
    agent = agents.Agent(
        name="describer",
        instructions="Describe the animal the user names.",
        output_type=Animal,
        model_settings=agents.ModelSettings(max_tokens=120, temperature=0),
    )
    result = _run(server, agent, "A spider.")
    assert isinstance(result.final_output, Animal)  # type: ignore[attr-defined]


def test_an_agent_calls_its_function_tool(server: RunningServer) -> None:
    calls: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return "sunny, 24 C"

    agent = agents.Agent(
        name="weather",
        instructions="Answer with the weather.",
        tools=[get_weather],
        model_settings=agents.ModelSettings(max_tokens=64, temperature=0, tool_choice="required"),
        tool_use_behavior="stop_on_first_tool",
    )
    result = _run(server, agent, "What is the weather in Paris?")
    assert calls and result.final_output == "sunny, 24 C"  # type: ignore[attr-defined]
