"""Eval sets: JSONL files of cases, one ``{input, expected | accept, checks}`` object a line.

``expected`` fields must match exactly and ``accept`` lists acceptable values per field
(as in a wrapper's golden examples); ``checks`` are assertions for generated text:
``{"field": "summary", "contains": "refund"}``, ``{"field": ..., "regex": "^[A-Z]"}``,
``{"field": ..., "min_chars": 10, "max_chars": 200}``. A set is identified by the
SHA-256 of its bytes, stored with every run, so two runs compare only on the same cases.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from wrappers.base import Example, Wrapper
from wrappers.errors import ConfigurationError

__all__ = ["Check", "Dataset", "EvalCase", "declared_datasets", "golden_dataset", "load_dataset"]

MAX_CASES = 100_000
MAX_REGEX = 500


class Check(BaseModel):
    """One assertion on an output field (a string, or anything, as its JSON text)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    contains: str | None = None
    regex: str | None = None
    min_chars: int | None = None
    max_chars: int | None = None

    @model_validator(mode="after")
    def _one_assertion_at_least(self) -> Check:
        if (self.contains, self.regex, self.min_chars, self.max_chars) == (None, None, None, None):
            raise ValueError("a check needs contains, regex, min_chars or max_chars")
        if self.regex is not None:
            if len(self.regex) > MAX_REGEX:
                raise ValueError(f"regex longer than {MAX_REGEX} characters")
            try:
                re.compile(self.regex)
            except re.error as error:
                raise ValueError(f"regex does not compile: {error}") from None
        return self

    def failure(self, output: dict[str, Any]) -> str | None:
        value = output.get(self.field)
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if self.contains is not None and self.contains.casefold() not in text.casefold():
            return f"{self.field}: does not contain {self.contains!r}"
        if self.regex is not None and not re.search(self.regex, text):
            return f"{self.field}: does not match {self.regex!r}"
        if self.min_chars is not None and len(text) < self.min_chars:
            return f"{self.field}: {len(text)} characters, fewer than {self.min_chars}"
        if self.max_chars is not None and len(text) > self.max_chars:
            return f"{self.field}: {len(text)} characters, more than {self.max_chars}"
        return None


class EvalCase(Example):
    """A golden example plus optional checks."""

    checks: tuple[Check, ...] = ()

    def truth(self, field: str) -> Any:
        """The right value of ``field``: the expected one, else the first accepted one."""
        if field in self.expected:
            return self.expected[field]
        accepted = self.accept.get(field)
        return accepted[0] if accepted else None

    def failures(self, output: dict[str, Any]) -> list[str]:
        problems = super().failures(output)
        problems += [problem for check in self.checks if (problem := check.failure(output))]
        return problems


@dataclass(frozen=True)
class Dataset:
    name: str  # the file's name, or "golden" for a wrapper's own examples
    sha256: str
    cases: tuple[EvalCase, ...]


def load_dataset(path: Path) -> Dataset:
    """Read and validate a JSONL eval set; a bad line is one error naming it."""
    try:
        content = path.read_bytes()
    except OSError as error:
        raise ConfigurationError(f"cannot read eval set {path}: {error.strerror}") from None
    cases: list[EvalCase] = []
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        if len(cases) >= MAX_CASES:
            raise ConfigurationError(f"{path}: more than {MAX_CASES} cases")
        try:
            cases.append(EvalCase.model_validate_json(raw))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "line"
            raise ConfigurationError(f"{path} line {number}: {where}: {first['msg']}") from None
    if not cases:
        raise ConfigurationError(f"eval set {path} has no cases")
    return Dataset(path.name, hashlib.sha256(content).hexdigest(), tuple(cases))


def golden_dataset(examples: list[dict[str, Any]]) -> Dataset:
    """A wrapper's golden examples (as the server describes them) as a dataset."""
    cases = tuple(EvalCase.model_validate(example) for example in examples)
    text = json.dumps(examples, sort_keys=True).encode()
    return Dataset("golden", hashlib.sha256(text).hexdigest(), cases)


def declared_datasets(wrapper: type[Wrapper], evals_dir: Path | None = None) -> list[Path]:
    """The eval sets a wrapper names (beside its module), then ``EVALS_DIR/NAME/*.jsonl``."""
    paths: list[Path] = []
    module = sys.modules.get(wrapper.__module__)
    home = Path(module.__file__).parent if module is not None and module.__file__ else None
    if home is not None:
        paths += [home / name for name in wrapper.evals.sets]
    if evals_dir is not None:
        paths += sorted((evals_dir / wrapper.name).glob("*.jsonl"))
    return paths
