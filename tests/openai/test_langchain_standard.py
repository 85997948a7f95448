"""LangChain's own standard integration suite (``langchain-tests``, ``ChatModelIntegrationTests``)
run on ``ChatOpenAI`` pointed at the session's real server, over Chat Completions and over the
Responses API.

What the suite asks and the server refuses (images, audio, PDF inputs, Anthropic's content
blocks) is switched off through the suite's own feature flags below, each with its reason;
the one recorded-cassette (VCR) test, which needs no server, is skipped from
``tests/openai/conftest.py`` (the suite forbids overriding its tests). Tests whose outcome is decided by the model and
not by the server are marked in ``MODEL_BOUND`` with what the 135M model does there: they still
run (a pass is reported as XPASS), and on a larger model (``WRAPSERVE_MODEL`` names it; the
test server inherits the environment) the marks are left off.
"""

from __future__ import annotations

import os
from typing import Any

import openai
import pytest

from tests.conftest import RunningServer
from tests.openai.conftest import MODEL

integration_tests = pytest.importorskip("langchain_tests.integration_tests")
langchain_openai = pytest.importorskip("langchain_openai")

SERVED_MODEL = os.environ.get("WRAPSERVE_MODEL", MODEL)  # the test server inherits it

# test name -> what the embedded 135M model does there, seen in a run of this file (the
# server's part is checked by the rest of the suite and by tests/openai: a forced tool call is
# grammar-enforced, a schema's answer validated). Under tool_choice "auto" the model decides
# whether to call a tool and with what; under JSON mode, what the object holds.
MODEL_BOUND = {
    "test_tool_calling": "calls magic_function but with input=100 where the prompt says 3",
    "test_tool_calling_async": "calls magic_function but with an argument the prompt did not give",
    "test_agent_loop": "answers in prose instead of calling the tool (tool_choice auto)",
    "test_json_mode": 'JSON mode gives {"setup": false, "punchline": ""}: an object, not the joke asked for',
    "test_unicode_tool_call_integration": "writes katakana gibberish where the prompt asks for こんにちは",
    "test_structured_output_optional_param": "fills the optional field with text the test does not expect",
    "test_bind_runnables_as_tools": "the forced call's answer_style can come back empty or run on to max_tokens",
    # The joke's strings have no maxLength: the model can write inside one until max_tokens,
    # and the cut-off answer (finish "length" / status "incomplete") parses to no Joke.
    "test_structured_output": "can run on inside the joke's unbounded strings to max_tokens",
    "test_structured_output_async": "can run on inside the joke's unbounded strings to max_tokens",
    "test_structured_output_pydantic_2_v1": "can run on inside the joke's unbounded strings to max_tokens",
}


# An assertion on the answer, a parse of it (OutputParserException and pydantic's
# ValidationError are ValueErrors), or an answer cut off at max_tokens.
MODEL_OUTCOMES = (AssertionError, ValueError, openai.LengthFinishReasonError)


class _OnWrapserve(integration_tests.ChatModelIntegrationTests):  # type: ignore[name-defined]
    base_url = ""
    responses_api = False

    @pytest.fixture(autouse=True)
    def _at_the_server(self, server: RunningServer, request: pytest.FixtureRequest) -> None:
        # Autouse: runs before the suite's ``model`` fixture builds the chat model.
        self.base_url = f"{server.base_url}/v1"
        reason = MODEL_BOUND.get(request.node.originalname)
        if reason is not None and SERVED_MODEL == MODEL:
            # Only what a model's answer raises: a server error (openai.APIStatusError) still fails.
            request.applymarker(
                pytest.mark.xfail(reason=f"135M model: {reason}", strict=False, raises=MODEL_OUTCOMES)
            )

    def invoke_with_cache_read_input(self, *, stream: bool = False) -> Any:
        """A long prompt sent twice: the second reads its prefix from vLLM's prefix cache."""
        model = self.chat_model_class(**{**self.standard_chat_model_params, **self.chat_model_params})
        prompt = "Reply with one word. " + " ".join(f"Note {i}: the shop opens at nine." for i in range(60))
        model.invoke(prompt)
        if not stream:
            return model.invoke(prompt)
        full = None
        for chunk in model.stream(prompt):
            full = chunk if full is None else full + chunk
        return full

    @property
    def chat_model_class(self) -> type[Any]:
        return langchain_openai.ChatOpenAI

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "model": SERVED_MODEL,
            "base_url": self.base_url,
            "api_key": "unused",
            "max_tokens": 200,  # a looping small model stops here, not at minutes per call
            "max_retries": 0,
            "stream_usage": True,  # usage on streams (stream_options.include_usage)
            "use_responses_api": self.responses_api,
        }

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supported_usage_metadata_details(self) -> dict[str, list[str]]:
        # Cached prompt tokens are reported (usage.prompt_tokens_details.cached_tokens); the
        # other details (audio, reasoning) are for modalities and models the server does not have.
        return {"invoke": ["cache_read_input"], "stream": ["cache_read_input"]}

    # Refused by the server with a 400 naming the field: text is its only modality.
    @property
    def supports_image_inputs(self) -> bool:
        return False

    @property
    def supports_image_urls(self) -> bool:
        return False  # and the server never fetches a URL

    @property
    def supports_pdf_inputs(self) -> bool:
        return False

    @property
    def supports_audio_inputs(self) -> bool:
        return False

    @property
    def supports_video_inputs(self) -> bool:
        return False

    @property
    def supports_image_tool_message(self) -> bool:
        return False

    @property
    def supports_pdf_tool_message(self) -> bool:
        return False

    @property
    def supports_anthropic_inputs(self) -> bool:
        return False  # Anthropic's content-block format; ChatOpenAI does not translate it

    @property
    def supports_model_override(self) -> bool:
        return False  # one served model (wrappers are models too, tested in test_wrappers_as_models.py)


class TestChatCompletions(_OnWrapserve):
    responses_api = False


class TestResponsesApi(_OnWrapserve):
    responses_api = True
