"""Everyday pydantic shapes through the official SDK's ``parse()``, on the real engine.

Each model goes to the server as ``response_format`` (``json_schema``, strict), is held by
the real grammar backend on the real model, validated by the server, and parsed back by
the SDK into the model: every one must come back as a parsed, valid object.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

import openai
import pytest
from pydantic import AnyUrl, BaseModel, EmailStr, Field, conlist, constr

from tests.openai.conftest import MODEL


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int = Field(ge=1, le=9)


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Tree(BaseModel):
    name: str = Field(max_length=12)
    children: list[Tree] = Field(default_factory=list, max_length=2)


class Item(BaseModel):
    sku: str = Field(max_length=10)
    qty: int = Field(ge=1, le=100)


def _model(name: str, annotation: object, **field: Any) -> type[BaseModel]:
    """A one-field model ``{value: annotation}``, named for the shape it tests."""
    namespace: dict[str, Any] = {"__annotations__": {"value": annotation}}
    if field:
        namespace["value"] = Field(**field)
    return type(name, (BaseModel,), namespace)


SHAPES: dict[str, tuple[type[BaseModel], str]] = {
    "int-ge-0": (_model("Count", int, ge=0), "How many legs does a cat have?"),
    "float-0-1": (_model("Probability", float, ge=0, le=1), "The probability of rain tomorrow, 0 to 1."),
    "float-gt-0": (_model("Price", float, gt=0), "The price of a coffee in dollars."),
    "int-wide-range": (_model("Population", int, gt=0, lt=1_000_000), "The population of a small town."),
    "set-of-str": (
        _model("Tags", set[str], max_length=3),
        "Give up to three tags for a blog post on cooking.",
    ),
    "discriminated-union": (
        _model("Pet", Annotated[Cat | Dog, Field(discriminator="kind")]),
        "Describe a pet.",
    ),
    "multiple-of": (_model("Minutes", int, multiple_of=5, ge=0, le=120), "A meeting length in minutes."),
    "ipv4": (_model("Address", ipaddress.IPv4Address), "The IPv4 address of a local router."),
    "decimal": (_model("Amount", Decimal), "The total of a grocery bill."),
    "email": (_model("Contact", EmailStr), "The email address of Ada at example.com."),
    "url": (_model("Link", AnyUrl), "The URL of the Python website."),
    "non-empty-list": (
        _model("Fruits", list[Annotated[str, Field(max_length=12)]], min_length=1, max_length=4),
        "Name some fruits.",
    ),
    "datetime": (_model("Moment", dt.datetime), "The moment the year 2030 starts, UTC."),
    "date": (_model("Day", dt.date), "The date of Christmas 2026."),
    "uuid": (_model("Identifier", uuid.UUID), "A random identifier."),
    "literal": (_model("Answer", Literal["yes", "no"]), "Is water wet?"),
    "enum": (_model("Paint", Color), "Pick a color."),
    "optional": (_model("Nickname", Annotated[str, Field(max_length=12)] | None), "A nickname, if any."),
    "dict-str-int": (_model("Stock", dict[str, int], max_length=3), "Stock counts of two fruits."),
    "tuple": (_model("Pair", tuple[int, Annotated[str, Field(max_length=10)]]), "A number and its name."),
    "recursive": (_model("Family", Tree), "A small family tree."),
    "nested-models": (_model("Order", list[Item], max_length=3), "An order of two items."),
    "conlist": (_model("Scores", conlist(int, min_length=2, max_length=3)), "Two or three test scores."),
    "constr-pattern": (
        _model("Code", constr(pattern=r"^[A-Z]{3}-[0-9]{3}$")),
        "A product code like ABC-123.",
    ),
    "bool": (_model("Flag", bool), "Is the sky blue?"),
    "str-bounded": (_model("Title", str, min_length=3, max_length=30), "A title for a cookbook."),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_everyday_pydantic_shapes_parse_into_valid_objects(client: openai.OpenAI, shape: str) -> None:
    model, question = SHAPES[shape]
    completion = client.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": f"{question} Answer in JSON."}],
        response_format=model,
        max_tokens=200,
        temperature=0,  # greedy: the same answer every run
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    parsed = choice.message.parsed
    assert isinstance(parsed, model), choice.message.content
    model.model_validate_json(choice.message.content or "")  # the text itself is valid too
