"""No schema may make the server fetch a URL or read a file: ``$ref`` resolves inside the
document only, for tool parameters under ``tool_choice: "auto"`` and for every answer
validator (no engine needed)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from server.openai.structured import compile_for
from server.structured.grammar import GrammarCompiler, SchemaRejected
from server.structured.validation import AnswerValidator, SchemaInvalid


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


@pytest.fixture
async def compiler() -> AsyncIterator[GrammarCompiler]:
    compiler = GrammarCompiler()
    yield compiler
    compiler.shutdown()


async def test_a_tool_parameter_ref_to_a_url_is_never_fetched(
    hits: tuple[str, list[str]], compiler: GrammarCompiler
) -> None:
    url, seen = hits
    for mode in ("validator", "json", "regex"):  # tools under "auto", forced tools, wrappers
        with pytest.raises(SchemaRejected, match="inside the schema"):
            await compile_for(compiler, {"$ref": f"{url}/x.json"}, "tools.0.function.parameters", prefer=mode)
    assert seen == []


async def test_a_ref_to_a_file_is_never_read(tmp_path: Path, compiler: GrammarCompiler) -> None:
    secret = tmp_path / "schema.json"
    secret.write_text('{"type": "string"}')
    with pytest.raises(SchemaRejected, match="inside the schema"):
        await compiler.compile({"$ref": secret.as_uri()}, prefer="validator")


def test_answer_validators_resolve_refs_inside_the_document_only(
    hits: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, seen = hits
    local = {"$defs": {"s": {"type": "string"}}, "$ref": "#/$defs/s"}
    assert AnswerValidator(local).is_valid("x") and not AnswerValidator(local).is_valid(1)
    (tmp_path / "s.json").write_text('{"type": "string"}')
    for remote in (f"{url}/x.json", (tmp_path / "s.json").as_uri(), "s.json"):
        with pytest.raises(SchemaInvalid):
            AnswerValidator({"properties": {"a": {"$ref": remote}}})
    assert seen == []
