"""Extraction wrappers: structured data out of text (any schema, entities, contacts, invoices, keywords)."""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, RootModel

from wrappers.base import EvalSpec, Example, Wrapper, WrapperSampling
from wrappers.catalogue.text import NAME_CHAR, NAME_WORD, bounded_phrase, phrase

__all__ = [
    "Contact",
    "ContactFirstRelease",
    "Entities",
    "EntitiesFirstRelease",
    "Extract",
    "ExtractFirstRelease",
    "Invoice",
    "InvoiceFirstRelease",
    "Keywords",
    "KeywordsFirstRelease",
]

# Generated strings are bounded in words, not maxLength (see wrappers/catalogue/text.py).
Name = Annotated[str, phrase(3, word=NAME_WORD)]
# 1.1.0 versions: every word bounded too, so the longest answer fits max_tokens.
BoundedName = Annotated[str, bounded_phrase(4, 24, char=NAME_CHAR)]


class Extract(Wrapper):
    name = "extract"
    version = "1.1.0"
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
    # 1.1.0: the schema closes the system turn (shared through the prefix cache by every
    # call with the same schema); 1.0.0 sent it with the text.
    context_template = "JSON Schema: {{ schema | json }}"
    template = "Text: {{ text }}"
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


class ExtractFirstRelease(Extract):
    """extract@1.0.0, kept so that callers pinned to it get the prompt it was released with."""

    version = "1.0.0"
    context_template = ""
    template = "JSON Schema: {{ schema | json }}\nText: {{ text }}"


class Entity(BaseModel):
    text: Annotated[str, phrase(3, "The entity exactly as written in the text.", word=NAME_WORD)]
    type: Literal["PERSON", "ORG", "LOCATION", "DATE", "MONEY", "PRODUCT", "EVENT", "OTHER"]


class EntitiesFirstRelease(Wrapper):
    """entities@1.0.0: names were bounded in words, not in characters."""

    name = "entities"
    version = "1.0.0"
    description = (
        "Up to 4 named entities in a text: people, organisations, places, dates, amounts, products, events."
    )
    task = "extract"

    class Input(BaseModel):
        text: str = Field(min_length=1, max_length=10_000)

    class Output(BaseModel):
        entities: list[Entity] = Field(max_length=4, description="The most important ones, each once.")

    instructions = (
        "You list the named entities in a text, in order of appearance, each once. text: the words as written. "
        "type: PERSON (people), ORG (companies, institutions), LOCATION (cities, countries, places), "
        "DATE (dates, days, years), MONEY (amounts), PRODUCT, EVENT, OTHER. An empty list if there are none.\n"
        'Example: "Maria Lopez joined Google in London in 2020." -> {"entities":[{"text":"Maria Lopez",'
        '"type":"PERSON"},{"text":"Google","type":"ORG"},{"text":"London","type":"LOCATION"},{"text":"2020","type":"DATE"}]}'
    )
    template = "Text: {{ text }}"
    sampling = WrapperSampling(max_tokens=320)
    evals = EvalSpec(sets=("evals/entities.jsonl",))  # every version runs the same set
    examples = (
        Example(input={"text": "Angela Merkel visited Paris on 3 May 2019."}),
        Example(input={"text": "Apple opened a new office in Berlin."}),
        Example(input={"text": "Tim Cook announced the iPhone 15 in California in September 2023."}),
    )


class NamedEntity(BaseModel):
    text: Annotated[str, bounded_phrase(4, 24, "The entity exactly as written in the text.", char=NAME_CHAR)]
    type: Literal["PERSON", "ORG", "LOCATION", "DATE", "MONEY", "PRODUCT", "EVENT", "OTHER"]


class Entities(EntitiesFirstRelease):
    version = "1.1.0"

    class Output(BaseModel):
        entities: list[NamedEntity] = Field(max_length=4, description="The most important ones, each once.")

    sampling = WrapperSampling(max_tokens=544)


class ContactFirstRelease(Wrapper):
    """contact@1.0.0: names were bounded in words, not in characters."""

    name = "contact"
    version = "1.0.0"
    description = (
        "A contact card from a text such as an e-mail signature: name, e-mail, phone, company, title."
    )
    task = "extract"

    class Input(BaseModel):
        text: str = Field(min_length=1, max_length=10_000)

    class Output(BaseModel):
        name: Name | None
        email: Annotated[str, Field(pattern=r"^[A-Za-z0-9._%+-]{1,40}@[A-Za-z0-9.-]{1,40}$")] | None
        phone: Annotated[str, Field(pattern=r"^[+0-9() .-]{3,25}$")] | None
        company: Name | None
        job_title: Name | None

    instructions = (
        "You extract a contact card from a text. Copy each value exactly as written in the text; "
        "use null for anything the text does not state. Never invent an e-mail address or phone number.\n"
        'Example: "Ann Lee, CTO at Initech, ann@initech.com" -> {"name":"Ann Lee","email":"ann@initech.com",'
        '"phone":null,"company":"Initech","job_title":"CTO"}'
    )
    template = "Text: {{ text }}"
    sampling = WrapperSampling(max_tokens=200)
    examples = (
        Example(
            input={
                "text": "Best regards,\nJohn Smith\nSales Manager, Acme Corp\njohn.smith@acme.com | +1 555 123 4567"
            },
            accept={"email": ["john.smith@acme.com"]},
        ),
        Example(
            input={"text": "You can reach Priya Patel at priya@example.org. She works for Globex."},
            accept={"email": ["priya@example.org"]},
        ),
        Example(input={"text": "Call me on 020 7946 0018 if anything changes. - Tom"}),
    )


class Contact(ContactFirstRelease):
    version = "1.1.0"

    class Output(BaseModel):
        name: BoundedName | None
        email: Annotated[str, Field(pattern=r"^[A-Za-z0-9._%+-]{1,40}@[A-Za-z0-9.-]{1,40}$")] | None
        phone: Annotated[str, Field(pattern=r"^[+0-9() .-]{3,25}$")] | None
        company: BoundedName | None
        job_title: BoundedName | None

    sampling = WrapperSampling(max_tokens=480)


class InvoiceFirstRelease(Wrapper):
    """invoice@1.0.0: names were bounded in words, not in characters."""

    name = "invoice"
    version = "1.0.0"
    description = "Key fields of an invoice: number, issue date, seller, buyer, total and currency."
    task = "extract"

    class Input(BaseModel):
        text: str = Field(min_length=1, max_length=20_000, description="The invoice as text.")

    class Output(BaseModel):
        number: Annotated[str, Field(pattern=r"^[A-Za-z0-9#/._-]{1,30}$")] | None
        date: datetime.date | None = Field(description="Issue date, YYYY-MM-DD.")
        seller: Name | None
        buyer: Name | None
        total: float | None = Field(description="The amount due, as a number.")
        currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = Field(description="ISO 4217 code.")

    instructions = (
        "You extract the key fields of an invoice. number: the invoice number. date: the issue date as "
        "YYYY-MM-DD. seller, buyer: company or person names. total: the total amount due as a plain number. "
        "currency: ISO 4217 code such as USD, EUR, GBP. Use null for fields the invoice does not show.\n"
        'Example: "Invoice A-17 from Initech to Ann Lee, 2024-05-01, total 99.50 EUR" -> {"number":"A-17",'
        '"date":"2024-05-01","seller":"Initech","buyer":"Ann Lee","total":99.5,"currency":"EUR"}'
    )
    template = "Invoice:\n{{ text }}"
    sampling = WrapperSampling(max_tokens=200)
    evals = EvalSpec(sets=("evals/invoice.jsonl",))  # every version runs the same set
    examples = (
        Example(
            input={
                "text": "INVOICE INV-2024-0042\nDate: 2024-03-15\nFrom: Blue Ocean Ltd\nTo: Northwind Traders\nTotal due: 1250.00 EUR"
            },
            accept={"number": ["INV-2024-0042"], "currency": ["EUR"]},
        ),
        Example(
            input={
                "text": "Invoice #7781, issued 2023-11-02 by Acme Inc. to John Doe. Amount: $89.99 (USD)."
            },
            accept={"currency": ["USD"]},
        ),
        Example(input={"text": "Bill no. 55 — Café Central — total GBP 12.40 — 1 January 2025"}),
    )


class Invoice(InvoiceFirstRelease):
    version = "1.1.0"

    class Output(BaseModel):
        number: Annotated[str, Field(pattern=r"^[A-Za-z0-9#/._-]{1,30}$")] | None
        date: datetime.date | None = Field(description="Issue date, YYYY-MM-DD.")
        seller: BoundedName | None
        buyer: BoundedName | None
        total: float | None = Field(description="The amount due, as a number.")
        currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = Field(description="ISO 4217 code.")

    sampling = WrapperSampling(max_tokens=384)


class KeywordsFirstRelease(Wrapper):
    """keywords@1.0.0: words were unbounded in length ("fightersfightersfighters...")."""

    name = "keywords"
    version = "1.0.0"
    description = "Up to 5 short keywords or tags that describe a text."
    task = "extract"

    class Input(BaseModel):
        text: str = Field(min_length=1, max_length=20_000)

    class Output(BaseModel):
        keywords: list[Annotated[str, phrase(3, word="[a-z0-9]+")]] = Field(min_length=1, max_length=5)

    instructions = (
        "You tag a text with short keywords (one to three words each, lowercase), most important first, "
        "each keyword once.\n"
        'Example: "Heavy rain flooded roads in Lisbon." -> {"keywords":["heavy rain","flooding","lisbon"]}'
    )
    template = "Text: {{ text }}"
    sampling = WrapperSampling(max_tokens=160)
    examples = (
        Example(input={"text": "The central bank raised interest rates to fight inflation."}),
        Example(input={"text": "A new species of frog was discovered in the Amazon rainforest."}),
        Example(input={"text": "Our team migrated the database from MySQL to PostgreSQL over the weekend."}),
    )


class Keywords(KeywordsFirstRelease):
    version = "1.1.0"

    class Output(BaseModel):
        keywords: list[Annotated[str, bounded_phrase(3, 20, char="[a-z0-9]")]] = Field(
            min_length=1, max_length=5
        )

    sampling = WrapperSampling(max_tokens=352)
