"""No schema may make the server fetch a URL or read a file: ``$ref`` resolves inside the
document only, for tool parameters under ``tool_choice: "auto"`` and for every answer
validator (no engine needed)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from referencing.exceptions import Unresolvable

from server.openai.chat.tools import _valid_arguments
from server.openai.protocol import FunctionDefinition
from server.structured.policy import answer_validator


@pytest.fixture
def hits() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that records every path asked of it."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = b'{"type": "string"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()


def test_a_tool_parameter_ref_to_a_url_is_never_fetched(hits: tuple[str, list[str]]) -> None:
    url, seen = hits
    function = FunctionDefinition(name="f", parameters={"$ref": f"{url}/x.json"})
    assert _valid_arguments(function, "anything") is False
    assert seen == []


def test_a_tool_parameter_ref_to_a_file_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "schema.json"
    secret.write_text('{"type": "string"}')
    function = FunctionDefinition(name="f", parameters={"$ref": secret.as_uri()})
    assert _valid_arguments(function, "anything") is False  # would be True if the file were read


def test_answer_validators_resolve_refs_inside_the_document_only(hits: tuple[str, list[str]]) -> None:
    url, seen = hits
    local = {"$defs": {"s": {"type": "string"}}, "$ref": "#/$defs/s"}
    assert answer_validator(local).is_valid("x") and not answer_validator(local).is_valid(1)
    with pytest.raises(Unresolvable):
        answer_validator({"$ref": f"{url}/x.json"}).is_valid("x")
    assert seen == []
