"""Deterministic synthetic task workloads: texts generated from templates with a fixed seed.

Three workloads shaped like the issue's: short texts to classify into 3-6 labels, entity
extractions, short reports. Each item is a wrapper call; the same wrapper renders the
exact prompt and schema that vLLM's own server is sent, so both do the same task.

No text repeats within a workload, and its variants share almost none (about 1% of the
extraction texts): a repeated prompt is served from the prefix cache and would make any
run that meets it look faster than real traffic. Short templated texts get a unique
message number for that; every measured run draws its own variant (``Workload.variant``),
so no run meets prompts an earlier run cached.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from wrappers.base import Message, Wrapper
from wrappers.catalogue.classify import Classify, Sentiment
from wrappers.catalogue.extract import Entities
from wrappers.catalogue.report import Report

__all__ = ["WORKLOADS", "Task", "Workload", "build_workload", "sentiment_items"]

# label set -> label -> templates; {a}, {b}... are filled from FILLERS.
LABEL_SETS: tuple[dict[str, tuple[str, ...]], ...] = (
    {
        "billing": (
            "I was charged {money} twice for my {product} order.",
            "My invoice shows a fee I never agreed to.",
        ),
        "shipping": (
            "My {product} was due on {day} and still has not arrived.",
            "The parcel went to the wrong address in {city}.",
        ),
        "technical": (
            "The {product} app crashes every time I open settings.",
            "I cannot log in since the update on {day}.",
        ),
    },
    {
        "sports": (
            "{city} won the final 3-1 after extra time.",
            "The marathon in {city} drew a record field of runners.",
        ),
        "politics": (
            "The parliament in {city} voted on the new budget on {day}.",
            "The minister resigned after the election.",
        ),
        "science": (
            "Researchers in {city} measured a new exoplanet's atmosphere.",
            "A new vaccine trial reported strong results.",
        ),
        "business": (
            "{org} reported quarterly revenue of {money}.",
            "Shares of {org} fell after the merger was announced.",
        ),
    },
    {
        "praise": (
            "The staff at {org} were wonderful, thank you so much!",
            "Best {product} I have ever bought.",
        ),
        "complaint": (
            "I am very unhappy with {org}, nobody answers my emails.",
            "The {product} broke after two days.",
        ),
        "question": ("Does the {product} work with older chargers?", "What are your opening hours on {day}?"),
        "suggestion": (
            "It would be great if {org} added a dark mode.",
            "You could offer the {product} in more colours.",
        ),
        "other": ("Just writing to say hello from {city}.", "This message was sent by mistake."),
    },
    {
        "urgent": (
            "The server in {city} is down and customers cannot pay. Fix it now!",
            "Fire alarm in the {city} office, evacuate.",
        ),
        "normal": (
            "Please update the {product} manual before {day}.",
            "Can we meet on {day} to review the plan?",
        ),
        "low": (
            "Someday we might repaint the meeting room.",
            "No rush: the old {product} posters can be recycled.",
        ),
    },
    {
        "food": (
            "The new bakery in {city} sells amazing croissants.",
            "I cooked pasta with fresh tomatoes on {day}.",
        ),
        "travel": (
            "Our flight to {city} leaves on {day} morning.",
            "We booked a hotel near the beach in {city}.",
        ),
        "health": (
            "My doctor told me to walk thirty minutes a day.",
            "The clinic in {city} offers free flu shots.",
        ),
        "finance": (
            "I moved {money} into a savings account with {org}.",
            "Mortgage rates rose again this month.",
        ),
        "education": (
            "The university in {city} opened a new physics course.",
            "My son passed his maths exam on {day}.",
        ),
        "entertainment": (
            "The new film by {person} premieres on {day}.",
            "The concert in {city} was sold out.",
        ),
    },
)

FILLERS: dict[str, tuple[str, ...]] = {
    "person": (
        "Anna Schmidt",
        "Carlos Diaz",
        "Mei Chen",
        "Tom Baker",
        "Priya Patel",
        "Lars Nilsson",
        "Aisha Khan",
    ),
    "org": ("Acme Corp", "Globex", "Initech", "Umbrella Bank", "Stark Industries", "Northwind", "Contoso"),
    "city": ("Berlin", "Madrid", "Tokyo", "Toronto", "Nairobi", "Lyon", "Oslo", "Chicago"),
    "day": ("Monday", "Tuesday", "Friday", "3 May", "12 June", "1 October"),
    "money": ("$120", "EUR 45", "$2 million", "GBP 300", "$9.99"),
    "product": ("phone", "laptop", "coffee machine", "headphones", "smart watch", "router"),
    "event": ("the annual conference", "a product launch", "the board meeting", "a trade fair"),
}

ENTITY_TEMPLATES = (
    "{person} of {org} met {person2} in {city} on {day} to discuss a {money} deal.",
    "On {day}, {org} opened a new office in {city}, said {person}.",
    "{person} flew from {city} to {city2} for {event} hosted by {org}.",
    "{org} agreed to pay {money} to {org2} after talks in {city} on {day}.",
)

REPORT_SENTENCES = (
    (
        "The {product} rollout in {city} finished on {day}.",
        "{org} signed a {money} contract with {org2}.",
        "Sales of the {product} rose 12% this quarter.",
        "{event} in {city} drew twice the expected visitors.",
    ),
    (
        "Two suppliers are late with deliveries.",
        "Backups of the {city} servers have not been tested.",
        "Customer complaints about the {product} doubled.",
        "One key engineer is leaving in {day}.",
    ),
    (
        "The team should test restores next week.",
        "{person} will call the suppliers on {day}.",
        "Marketing proposes a retention campaign.",
        "The budget must be approved by {org} before {day}.",
    ),
)


@dataclass(frozen=True)
class Task:
    """One wrapper call, and the label it was generated from where there is one."""

    wrapper: type[Wrapper]
    input: dict[str, Any]
    expected: dict[str, Any] = field(default_factory=dict)

    def messages(self) -> list[Message]:
        return self.wrapper.messages(self.wrapper.Input.model_validate(self.input))

    def schema(self) -> dict[str, Any]:
        return self.wrapper.output_schema(self.wrapper.Input.model_validate(self.input))

    @property
    def max_tokens(self) -> int:
        return self.wrapper.sampling.max_tokens


@dataclass(frozen=True)
class Workload:
    name: str
    tasks: tuple[Task, ...]
    seed: int = 0

    def variant(self, number: int, count: int | None = None) -> Workload:
        """Tasks of the same kind and shape with other texts (``number`` >= 1)."""
        seed = self.seed + 1000 * number
        return Workload(self.name, WORKLOADS[self.name](count or len(self.tasks), seed), seed)


def _fill(template: str, rng: random.Random) -> str:
    values = {key: rng.choice(options) for key, options in FILLERS.items()}
    values.update({f"{key}2": rng.choice(options) for key, options in FILLERS.items()})
    return template.format(**values)


def _references(rng: random.Random, count: int) -> list[int]:
    """Distinct message numbers: a seed's numbers rarely meet another seed's (1 in 90,000)."""
    return rng.sample(range(10_000, 100_000), count)


def classify_tasks(count: int, seed: int) -> tuple[Task, ...]:
    rng = random.Random(seed)
    tasks = []
    for reference in _references(rng, count):
        label_set = rng.choice(LABEL_SETS)
        label = rng.choice(list(label_set))
        text = f"Message {reference}: {_fill(rng.choice(label_set[label]), rng)}"
        tasks.append(Task(Classify, {"text": text, "labels": list(label_set)}, {"label": label}))
    return tuple(tasks)


def extract_tasks(count: int, seed: int) -> tuple[Task, ...]:
    """Texts with four to six filled slots (thousands of combinations), each drawn once."""
    rng = random.Random(seed)
    texts: dict[str, None] = {}
    while len(texts) < count:
        texts[_fill(rng.choice(ENTITY_TEMPLATES), rng)] = None
    return tuple(Task(Entities, {"text": text}) for text in texts)


def report_tasks(count: int, seed: int) -> tuple[Task, ...]:
    rng = random.Random(seed)
    tasks = []
    for _ in range(count):
        sentences = [
            _fill(rng.choice(group), rng) for group in REPORT_SENTENCES for _ in range(rng.randint(1, 2))
        ]
        tasks.append(Task(Report, {"text": " ".join(sentences)}))
    return tuple(tasks)


def sentiment_items(count: int, seed: int = 9) -> tuple[Task, ...]:
    """Texts for the sentiment wrapper, whose schema is static (precompiled at start-up)."""
    rng = random.Random(seed)
    praise, complaint = LABEL_SETS[2]["praise"], LABEL_SETS[2]["complaint"]
    return tuple(
        Task(Sentiment, {"text": f"Message {reference}: {_fill(rng.choice(praise + complaint), rng)}"})
        for reference in _references(rng, count)
    )


WORKLOADS = {"classify": classify_tasks, "extract": extract_tasks, "report": report_tasks}
SEEDS = {"classify": 6, "extract": 7, "report": 8}  # the default workloads; variants derive from these


def build_workload(name: str, count: int) -> Workload:
    return Workload(name, WORKLOADS[name](count, SEEDS[name]), SEEDS[name])
