"""The wrapper abstraction: a named, versioned task function with typed input and output.

A wrapper is a plain class with explicit attributes; nothing is inferred from
docstrings or call stacks. The server renders its prompt, constrains decoding to its
output schema and validates the answer; applications only see ``Input -> Output``.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache, lru_cache
from typing import Any, ClassVar, Literal

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EvalSpec", "Example", "Message", "Wrapper", "WrapperSampling"]

Task = Literal["classify", "extract", "evaluate", "report", "transform"]
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


class WrapperSampling(BaseModel):
    """A wrapper's default sampling: deterministic unless the wrapper says otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(default=256, gt=0)
    temperature: float = Field(default=0.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    # Small models decoding greedily repeat themselves until max_tokens; free-text wrappers
    # set frequency_penalty (OpenAI's: counts only the answer's own tokens) so their answers
    # end. repetition_penalty (vLLM's) also penalizes every prompt token, which fights tasks
    # that must copy their input (rewrite, translate, redact).
    frequency_penalty: float = Field(default=0.0, ge=-2, le=2)
    repetition_penalty: float = Field(default=1.0, ge=1, le=2)


class Example(BaseModel):
    """A golden case: an input, and what a correct output must contain.

    ``expected`` fields must match exactly; ``accept`` lists acceptable values per field
    (for answers where more than one is right). An example with neither only checks
    that the output validates.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: dict[str, Any]
    expected: dict[str, Any] = Field(default_factory=dict)
    accept: dict[str, list[Any]] = Field(default_factory=dict)

    def failures(self, output: dict[str, Any]) -> list[str]:
        problems = [
            f"{key}: expected {value!r}, got {output.get(key)!r}"
            for key, value in self.expected.items()
            if output.get(key) != value
        ]
        problems += [
            f"{key}: expected one of {values!r}, got {output.get(key)!r}"
            for key, values in self.accept.items()
            if output.get(key) not in values
        ]
        return problems


Metric = Literal["labels", "fields", "scores", "checks"]


class EvalSpec(BaseModel):
    """How a wrapper is evaluated on datasets (``wrapserve eval NAME --dataset FILE``).

    ``metric``: ``labels`` (accuracy, per-class precision/recall, a confusion matrix) on
    ``field``; ``fields`` (per-field exact match, set F1 for lists); ``scores`` (mean absolute
    error and agreement) on the numeric ``field``; ``checks`` (the cases' assertions only).
    Left out, each follows the task (``Wrapper.eval_spec``). ``sets``: JSONL eval sets, as
    paths relative to the folder of the wrapper's module.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Metric | None = None
    field: str | None = None
    sets: tuple[str, ...] = ()


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


_TEMPLATES = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
)


@cache
def _compiled_template(source: str) -> Any:
    return _TEMPLATES.from_string(source)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=False)


_TEMPLATES.filters["json"] = _compact


@lru_cache(maxsize=4096)
def _schema_text(model: type[BaseModel]) -> str:
    # pydantic builds a model's JSON Schema anew on each call (~0.3 ms for a catalogue
    # model), and every invocation needs the output schema, the system prompt and the
    # fingerprint: build it once per model class, which is fixed once defined.
    return json.dumps(model.model_json_schema())


def _json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema, as ``model_json_schema()`` gives it; a fresh copy each time,
    so a caller may change it."""
    schema: dict[str, Any] = json.loads(_schema_text(model))
    return schema


@lru_cache(maxsize=4096)
def _fingerprint(wrapper: type[Wrapper]) -> str:
    content = {
        "name": wrapper.name,
        "instructions": wrapper.instructions,
        "template": wrapper.template,
        "input": _json_schema(wrapper.Input),
        "output": _json_schema(wrapper.Output),
        "dynamic_schema": wrapper.schema_rule(),
        "sampling": wrapper.sampling.model_dump(),
        "model": wrapper.model,
    }
    if wrapper.context_template:  # absent from wrappers without one: their locked prints stay
        content["context_template"] = wrapper.context_template
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return f"sha256:{digest[:16]}"


@lru_cache(maxsize=4096)
def _default_system_prompt(wrapper: type[Wrapper]) -> str:
    parts = [wrapper.instructions.strip(), "Answer with one JSON object only."]
    if (schema := wrapper.static_schema()) is not None:
        parts.append(f"Its JSON Schema: {_compact(_schema_for_prompt(schema))}")
    return "\n\n".join(parts)


_TEMPLATE_TAG = re.compile(r"\{[{%#]")


class Wrapper:
    """Base class of every wrapper. Subclasses set the class attributes below."""

    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str]
    task: ClassVar[Task]
    Input: ClassVar[type[BaseModel]]
    Output: ClassVar[type[BaseModel]]
    instructions: ClassVar[str]
    # Jinja (sandboxed) rendering the user turn from the input's fields.
    template: ClassVar[str]
    # Jinja rendering the part of the input that repeats across calls (a label set, a list
    # of intents). It closes the system turn, so the prefix cache serves it to every call
    # that shares it; the per-call text stays in ``template``. Empty: the turn is static.
    context_template: ClassVar[str] = ""
    sampling: ClassVar[WrapperSampling] = WrapperSampling()
    model: ClassVar[str | None] = None
    examples: ClassVar[tuple[Example, ...]] = ()
    evals: ClassVar[EvalSpec] = EvalSpec()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "abstract", False) and "abstract" in cls.__dict__:
            return
        missing = [
            a
            for a in ("name", "version", "description", "task", "Input", "Output", "instructions", "template")
            if not hasattr(cls, a)
        ]
        if missing:
            raise TypeError(f"wrapper {cls.__qualname__} is missing {', '.join(missing)}")
        if not SEMVER.match(cls.version):
            raise TypeError(f"wrapper {cls.name}: version {cls.version!r} is not semver (MAJOR.MINOR.PATCH)")
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", cls.name):
            raise TypeError(f"wrapper name {cls.name!r}: use lowercase letters, digits, '-' and '_'")

    # -- identity --------------------------------------------------------------------

    @classmethod
    def ref(cls) -> str:
        return f"{cls.name}@{cls.version}"

    @classmethod
    def version_tuple(cls) -> tuple[int, int, int]:
        major, minor, patch = (int(part) for part in cls.version.split("."))
        return major, minor, patch

    @classmethod
    def fingerprint(cls) -> str:
        """Content hash of everything that shapes the answer. Changes need a version bump.
        Worked out once per class: a wrapper's attributes are fixed once it is defined."""
        return _fingerprint(cls)  # type: ignore[arg-type]  # a class is hashable

    @classmethod
    def eval_spec(cls) -> EvalSpec:
        """``evals`` with the task's defaults filled in: a classifier's labels are its one
        output field, a grader's scores its ``score``; extractions compare fields; free text
        is judged by each case's checks."""
        spec = cls.evals
        metric = spec.metric
        fields = list(cls.Output.model_fields)
        if metric is None:
            if cls.task == "classify":
                metric = "labels"
            elif cls.task == "extract":
                metric = "fields"
            elif cls.task == "evaluate" and "score" in fields:
                metric = "scores"
            elif cls.task == "evaluate":
                metric = "labels"
            else:
                metric = "checks"
        field = spec.field
        if field is None and metric == "scores":
            field = "score"
        elif field is None and metric == "labels":
            # the one field, or the verdict beside a rationale (compare, fact_check)
            labelled = [name for name in fields if name not in ("rationale", "evidence")]
            field = labelled[0] if labelled else None
        return spec.model_copy(update={"metric": metric, "field": field})

    # -- output schema -----------------------------------------------------------------

    @classmethod
    def static_schema(cls) -> dict[str, Any] | None:
        """The output schema when it does not depend on the input (compiled at start-up)."""
        if cls.schema_rule():
            return None
        return _json_schema(cls.Output)

    @classmethod
    def schema_rule(cls) -> str:
        """A description of how ``output_schema`` derives the schema from the input, or ''."""
        return ""

    @classmethod
    def output_schema(cls, data: BaseModel) -> dict[str, Any]:
        """The schema this call's answer is constrained to. Per-call wrappers override it."""
        return _json_schema(cls.Output)

    @classmethod
    def parse_output(cls, data: BaseModel, value: Any) -> BaseModel:
        return cls.Output.model_validate(value)

    # -- prompt ----------------------------------------------------------------------

    @classmethod
    def system_prompt(cls) -> str:
        """The static part, byte-identical across calls, so the prefix cache serves it."""
        return _default_system_prompt(cls)  # type: ignore[arg-type]  # a class is hashable

    @classmethod
    def user_head(cls) -> str:
        """The literal start of every user message (the template's text before its first
        tag): static, so the prefix cache can serve it with the system turn."""
        head, *tag = _TEMPLATE_TAG.split(cls.template, maxsplit=1)
        if tag and tag[0].startswith("-"):  # the tag trims the whitespace before it
            head = head.rstrip()
        return head.lstrip()  # messages are stripped

    @classmethod
    def messages(cls, data: BaseModel) -> list[Message]:
        values = data.model_dump(mode="json", by_alias=True)
        system = cls.system_prompt()
        if cls.context_template and (
            context := _compiled_template(cls.context_template).render(**values).strip()
        ):
            system = f"{system}\n\n{context}"
        user = _compiled_template(cls.template).render(**values).strip()
        return [Message(role="system", content=system), Message(role="user", content=user)]


# A pattern longer than this is left out of the prompt: the grammar enforces it anyway, and
# a long regex (a bounded-prose pattern is ~4,800 characters, ~4,000 tokens) teaches a model
# nothing while costing prefill on every first call and drowning the instructions.
MAX_PROMPT_PATTERN = 64


def _schema_for_prompt(schema: Any) -> Any:
    """Schema shown to the model without pydantic's noise (titles) or unreadable patterns."""
    if isinstance(schema, dict):
        return {
            key: _schema_for_prompt(value)
            for key, value in schema.items()
            if not (key == "title" and isinstance(value, str))
            and not (key == "pattern" and isinstance(value, str) and len(value) > MAX_PROMPT_PATTERN)
        }
    if isinstance(schema, list):
        return [_schema_for_prompt(v) for v in schema]
    return schema
