"""Chat completions on the local model: OpenAI request -> engine request -> OpenAI answer."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import jinja2

from server.engine.protocol import Engine, GeneratedChoice, GenerationRequest, GenerationResult
from server.openai import params
from server.openai.chat.tools import (
    ToolPlan,
    parameter_schemas,
    plan_tools,
    read_cut_tool_call,
    read_tool_calls,
    with_tools,
)
from server.openai.logprobs import chat_logprobs_out
from server.openai.protocol import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessageOut,
    ToolCall,
)
from server.openai.structured import compile_for, output_grammar
from server.state import ServerState
from server.structured.grammar import CompiledGrammar
from wrappers.errors import BadRequest

__all__ = ["PreparedChat", "chat_completion_from", "prepare_chat", "tool_calls_in"]


@dataclass(frozen=True)
class PreparedChat:
    """A chat request translated for the engine, with what is needed to answer it."""

    request: GenerationRequest
    model: str
    tools: ToolPlan | None
    grammar: CompiledGrammar | None
    top_logprobs: int
    tool_validators: dict[str, CompiledGrammar] = field(default_factory=dict)  # by function name


async def prepare_chat(body: ChatCompletionRequest, state: ServerState, engine: Engine) -> PreparedChat:
    if body.chat_template is not None:
        raise BadRequest(
            "chat_template is not accepted; the template comes from the model's manifest",
            param="chat_template",
        )
    limits = state.settings.limits
    if len(body.messages) > limits.max_messages:
        raise BadRequest(
            f"{len(body.messages)} messages; a request holds at most {limits.max_messages} "
            "(WRAPSERVE_LIMITS__MAX_MESSAGES)",
            param="messages",
        )
    tools = plan_tools(body.tools, body.tool_choice)
    messages = params.to_chat_messages(body.messages)
    if tools is not None:
        messages = with_tools(messages, tools)
    logprobs = params.chat_logprobs(body.logprobs, body.top_logprobs)
    try:
        prompt = await engine.encode_chat(messages)
    except jinja2.TemplateError as error:
        raise BadRequest(
            f"the model's chat template cannot render these messages: {error}", param="messages"
        ) from None
    requested = body.max_tokens if body.max_completion_tokens is None else body.max_completion_tokens
    param = "max_tokens" if body.max_completion_tokens is None else "max_completion_tokens"
    max_tokens = params.resolve_max_tokens(requested, len(prompt), engine.info.max_model_len, limits, param)
    sampling = params.to_sampling(body, max_tokens=max_tokens, logprobs=logprobs, limits=limits)
    grammar = await output_grammar(body.response_format, tools, state.grammars)
    # Every function's parameters are vetted, also under "auto", where no grammar holds them.
    validators = {
        name: await compile_for(state.grammars, schema, field_name, prefer="validator")
        for name, (field_name, schema) in (parameter_schemas(tools) if tools else {}).items()
    }
    request = GenerationRequest(
        f"chatcmpl-{uuid.uuid4().hex}", prompt, sampling, grammar.constraint if grammar else None
    )
    return PreparedChat(request, engine.info.model_id, tools, grammar, logprobs or 0, validators)


def tool_calls_in(text: str, finish_reason: str, prepared: PreparedChat) -> list[ToolCall] | None:
    """The calls an answer makes: a whole valid call, or a forced one cut off by max_tokens."""
    if prepared.tools is None:
        return None
    if finish_reason == "stop":
        return read_tool_calls(text, prepared.tools, prepared.tool_validators)
    if finish_reason == "length":
        return read_cut_tool_call(text, prepared.tools)
    return None


def _choice(choice: GeneratedChoice, prepared: PreparedChat) -> ChatChoice:
    logprobs = chat_logprobs_out(choice.logprobs, prepared.top_logprobs)
    calls = tool_calls_in(choice.text, choice.finish_reason, prepared)
    if calls:
        message = ChatMessageOut(content=None, tool_calls=calls)
        finish = "tool_calls" if choice.finish_reason == "stop" else choice.finish_reason
        return ChatChoice(index=choice.index, message=message, finish_reason=finish, logprobs=logprobs)
    message = ChatMessageOut(content=choice.text)
    return ChatChoice(
        index=choice.index, message=message, finish_reason=choice.finish_reason, logprobs=logprobs
    )


def chat_completion_from(result: GenerationResult, prepared: PreparedChat) -> ChatCompletion:
    return ChatCompletion(
        id=prepared.request.request_id,
        created=int(time.time()),
        model=prepared.model,
        choices=[_choice(choice, prepared) for choice in result.choices],
        usage=params.usage(result.prompt_tokens, result.completion_tokens, result.cached_prompt_tokens),
    )
