"""CLI commands about wrappers: ``wrappers list`` (local) and ``call`` (against a server).

Registered on the main typer app by ``server/cli/main.py`` with ``eval``
(``server/cli/evals.py``); kept apart so the serving commands and these client-side ones
stay small. Errors end as one ``error:`` line, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from server.cli.common import fail, settings_from
from wrappers.catalogue import BUILTINS
from wrappers.client import WrapserveClient
from wrappers.errors import WrapserveError
from wrappers.registry import WrapperRegistry, load_directory

__all__ = ["ApiKey", "Url", "error_line", "register", "server_url", "wrappers_app"]

wrappers_app = typer.Typer(help="Wrappers: the built-in catalogue and your own.", no_args_is_help=True)


Url = Annotated[
    str | None,
    typer.Option(
        help="Server URL (WRAPSERVE_URL); default http://WRAPSERVE_HOST:WRAPSERVE_PORT.",
        envvar="WRAPSERVE_URL",
    ),
]
ApiKey = Annotated[
    str | None, typer.Option(help="API key sent as a Bearer token.", envvar="WRAPSERVE_API_KEY")
]


def _fail(message: str, code: int = 1) -> NoReturn:
    fail(message, code)


def server_url(url: str | None) -> str:
    if url:
        return url
    settings = settings_from()
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}"


def error_line(error: WrapserveError) -> str:
    line = f"{error.message} ({error.status} {error.code})"
    raw = error.details.get("raw_output")
    return line + (f"; raw output: {raw[:200]!r}" if raw else "")


@wrappers_app.command("list")
def wrappers_list(
    wrappers_dir: Annotated[
        Path | None, typer.Option(help="Folder of your own wrapper modules (WRAPSERVE_WRAPPERS_DIR).")
    ] = None,
) -> None:
    """Every wrapper this installation offers (the catalogue plus your folder); no server needed."""
    settings = settings_from(wrappers_dir=wrappers_dir)
    registry = WrapperRegistry(BUILTINS)
    try:
        user = load_directory(settings.wrappers_dir) if settings.wrappers_dir else []
        for wrapper in user:
            registry.add(wrapper)
    except WrapserveError as error:
        _fail(error.message, code=2)
    table = Table("name", "versions", "task", "description", "source")
    for name in registry.names():
        versions = registry.versions(name)
        source = "yours" if any(wrapper in user for wrapper in versions) else "catalogue"
        table.add_row(
            name, ", ".join(w.version for w in versions), versions[0].task, versions[0].description, source
        )
    table.columns[0].no_wrap = True
    Console().print(table)


def call(
    name: Annotated[str, typer.Argument(help="Wrapper name, or name@version.")],
    input: Annotated[
        str, typer.Option("--input", "-i", help="The input as a JSON object ('-' reads stdin).")
    ],
    version: Annotated[str | None, typer.Option(help="'1', '1.2' or '1.2.0'; latest if omitted.")] = None,
    url: Url = None,
    api_key: ApiKey = None,
    full: Annotated[
        bool, typer.Option(help="Print the whole answer (model, usage, ...), not just the output.")
    ] = False,
) -> None:
    """Call a wrapper on a running server and print its output as JSON."""
    text = sys.stdin.read() if input == "-" else input
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        _fail(f"--input is not JSON: {error}", code=2)
    if not isinstance(data, dict):
        _fail("--input must be a JSON object", code=2)
    try:
        with WrapserveClient(server_url(url), api_key=api_key) as client:
            answer = client.call_raw(name, data, version=version)
    except WrapserveError as error:
        _fail(error_line(error))
    typer.echo(json.dumps(answer if full else answer["output"], ensure_ascii=False, indent=2))


def register(app: typer.Typer) -> None:
    """Add ``wrappers`` and ``call`` to the main command line."""
    app.add_typer(wrappers_app, name="wrappers")
    app.command("call")(call)
