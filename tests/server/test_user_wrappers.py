"""User wrappers: a folder of Python modules (WRAPSERVE_WRAPPERS_DIR), served beside the catalogue.

The session server loads ``tests/fixtures/user_wrappers``; its ``ticket_priority.py`` is
the example the README shows, checked here to stay the same and under 20 lines.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, USER_WRAPPERS
from wrappers.errors import ConfigurationError
from wrappers.registry import WrapperRegistry, load_directory

EXAMPLE = USER_WRAPPERS / "ticket_priority.py"


def readme_example() -> str:
    section = (REPO / "README.md").read_text().split("### Writing a wrapper", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README: no python block under 'Writing a wrapper'"
    return match.group(1)


def test_readme_shows_the_example_module_in_under_20_lines() -> None:
    source = EXAMPLE.read_text()
    assert readme_example() == source
    assert len(source.splitlines()) < 20


def test_load_directory_finds_the_wrapper(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(readme_example())
    (tmp_path / "notes.txt").write_text("not python")
    [wrapper] = load_directory(tmp_path)
    assert wrapper.ref() == "ticket-priority@1.0.0"
    assert wrapper.Output.model_validate({"priority": "urgent"}).priority == "urgent"  # type: ignore[attr-defined]
    registry = WrapperRegistry([wrapper])
    assert registry.resolve("ticket-priority") is wrapper


def test_two_versions_side_by_side() -> None:
    registry = WrapperRegistry(load_directory(USER_WRAPPERS))
    assert [w.version for w in registry.versions("ticket-priority")] == ["2.0.0", "1.0.0"]
    assert registry.resolve("ticket-priority@1").version == "1.0.0"
    assert registry.resolve("ticket-priority", "1.0.0").version == "1.0.0"
    assert registry.resolve("ticket-priority").version == "2.0.0"


def test_a_broken_module_is_a_configuration_error(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "good.py")
    (tmp_path / "broken.py").write_text("import no_such_module_here\n")
    with pytest.raises(ConfigurationError, match=r"broken\.py"):
        load_directory(tmp_path)


def test_user_wrapper_is_listed_and_callable_over_http(http: httpx.Client) -> None:
    listed = {item["name"]: item for item in http.get("/v1/wrappers").json()["data"]}
    assert listed["ticket-priority"]["versions"] == ["2.0.0", "1.0.0"]
    response = http.post(
        "/v1/wrappers/ticket-priority/invoke",
        json={"input": {"text": "Checkout is broken and we are losing orders!"}, "version": "1"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == "1.0.0"
    assert body["output"]["priority"] in {"low", "normal", "urgent"}
    assert set(body["output"]) == {"priority"}


def test_latest_user_version_answers_in_its_own_shape(http: httpx.Client) -> None:
    response = http.post(
        "/v1/wrappers/ticket-priority/invoke", json={"input": {"text": "I was charged twice this month."}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == "2.0.0"
    assert body["output"]["priority"] in {"low", "normal", "urgent"}
    assert body["output"]["team"] in {"billing", "tech", "other"}
