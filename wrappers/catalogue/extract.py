"""Extraction wrappers: structured data out of text."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, RootModel

from wrappers.base import Example, Wrapper, WrapperSampling

__all__ = ["Extract"]


class Extract(Wrapper):
    name = "extract"
    version = "1.0.0"
    description = "Extract data from a text into the JSON Schema given with the call."
    task = "extract"

    class Input(BaseModel):
        text: str = Field(min_length=1, max_length=50_000)
        schema_: dict[str, Any] = Field(alias="schema", description="JSON Schema of the data to extract.")

        model_config = {"populate_by_name": True}

    class Output(RootModel[Any]):
        pass

    instructions = (
        "You extract information from a text into JSON that follows the given JSON Schema. "
        "Copy values from the text; do not invent facts that are not in it."
    )
    template = "JSON Schema: {{ schema | json }}\nText: {{ text }}"
    sampling = WrapperSampling(max_tokens=512)
    examples = (
        Example(
            input={
                "text": "Order 1042 was placed by Maria Lopez on 2024-03-02.",
                "schema": {
                    "type": "object",
                    "properties": {"customer": {"type": "string"}, "order_id": {"type": "integer"}},
                    "required": ["customer", "order_id"],
                },
            },
            expected={"order_id": 1042},
        ),
        Example(
            input={
                "text": "The conference takes place in Lisbon and costs 450 euros.",
                "schema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "price_eur": {"type": "integer"}},
                    "required": ["city", "price_eur"],
                },
            },
            expected={"city": "Lisbon"},
        ),
        Example(
            input={
                "text": "Contact: jane@example.com",
                "schema": {
                    "type": "object",
                    "properties": {"email": {"type": "string", "format": "email"}},
                    "required": ["email"],
                },
            },
            expected={"email": "jane@example.com"},
        ),
    )

    @classmethod
    def schema_rule(cls) -> str:
        return "the input's schema"

    @classmethod
    def output_schema(cls, data: BaseModel) -> dict[str, Any]:
        assert isinstance(data, cls.Input)
        return data.schema_
