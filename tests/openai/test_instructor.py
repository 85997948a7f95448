"""instructor on top of the ``openai`` SDK, pointed at Wrapserve (JSON and TOOLS modes).

instructor is not a dev dependency: its release pins ``jiter<0.15`` and ``rich<15``,
which would downgrade the shared ``openai`` SDK. ``scripts/bootstrap.sh`` installs it
without its pins into ``.venv/test-extras`` and ``make test`` puts that on ``PYTHONPATH``;
a bare ``pytest`` without it skips these tests.

Mode.JSON is not tested: it sends ``response_format: json_object`` with the schema only
in the prompt, so the grammar guarantees an object but not that schema; the 135M test
model does not follow it. JSON_SCHEMA and TOOLS modes put the schema where the grammar
enforces it.
"""

from __future__ import annotations

from typing import Literal

import openai
import pytest
from pydantic import BaseModel, Field

from tests.openai.conftest import MODEL

instructor = pytest.importorskip("instructor")


class Person(BaseModel):
    name: str = Field(max_length=30)
    role: Literal["engineer", "teacher", "doctor", "other"]


@pytest.mark.parametrize("mode", ["JSON_SCHEMA", "TOOLS", "TOOLS_STRICT"])
def test_instructor_returns_the_model(client: openai.OpenAI, mode: str) -> None:
    patched = instructor.from_openai(client, mode=getattr(instructor.Mode, mode))
    person = patched.chat.completions.create(
        model=MODEL,
        response_model=Person,
        messages=[{"role": "user", "content": "Maria Lopez teaches maths at a school."}],
        temperature=0,
        max_tokens=80,
        max_retries=0,
    )
    assert isinstance(person, Person)
