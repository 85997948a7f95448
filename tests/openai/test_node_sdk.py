"""The Node ``openai`` SDK (installed by ``make setup`` beside the virtualenv when npm is
there) against the real server: ``responses.create``, ``responses.parse`` with a zod
format, ``responses.stream``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import RunningServer
from tests.openai.conftest import MODEL

REPO = Path(__file__).resolve().parents[2]
NODE_PACKAGES = REPO / ".venv" / "node"
SCRIPT = Path(__file__).parent / "node" / "responses.mjs"


def test_the_node_sdk_creates_parses_and_streams_responses(server: RunningServer) -> None:
    if shutil.which("node") is None or not (NODE_PACKAGES / "node_modules" / "openai").is_dir():
        pytest.skip(
            "node or the Node openai SDK is not installed (scripts/bootstrap.sh installs it when npm is there)"
        )
    env = {
        **os.environ,
        "BASE_URL": f"{server.base_url}/v1",
        "MODEL": MODEL,
        "NODE_PATH": str(NODE_PACKAGES / "node_modules"),
    }
    # An .mjs file resolves packages from its own folder up, so it runs from beside them.
    script = NODE_PACKAGES / SCRIPT.name
    script.write_text(SCRIPT.read_text())
    ran = subprocess.run(["node", str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    out = json.loads(ran.stdout.strip().splitlines()[-1])
    assert out["create"]["status"] in ("completed", "incomplete") and out["create"]["text"]
    assert out["parse"]["status"] == "completed"
    assert set(out["parse"]["parsed"]) == {"name", "country"}
    assert out["stream"]["last"] in ("response.completed", "response.incomplete")
    assert out["stream"]["deltas"] and out["stream"]["deltas"] == out["stream"]["text"]
