"""``wrapserve release``: show the releases file, promote a version onto a channel (gated).

The file is the one the server reads (``WRAPSERVE_RELEASES_FILE``); after a change the
server takes it on SIGHUP (``kill -HUP <pid>``), or at its next start.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Any

import tomli_w
import typer
from rich.console import Console

from server.cli.common import fail, settings_from
from server.releases.config import parse_releases
from wrappers.catalogue import BUILTINS
from wrappers.errors import WrapserveError
from wrappers.evals.gate import gate
from wrappers.evals.store import EvalStore
from wrappers.registry import WrapperRegistry, load_directory

__all__ = ["release_app"]

release_app = typer.Typer(help="Release channels: which version `NAME@CHANNEL` serves.", no_args_is_help=True)

File = Annotated[Path | None, typer.Option("--file", help="The releases file (WRAPSERVE_RELEASES_FILE).")]


def _path(file: Path | None) -> Path:
    path = file or settings_from().releases_file
    if path is None:
        fail("no releases file: pass --file or set WRAPSERVE_RELEASES_FILE", code=2)
    return path


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8")
    parse_releases(text, path.suffix)  # refuses a file the server would refuse
    data: dict[str, Any] = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2) + "\n" if path.suffix == ".json" else tomli_w.dumps(data)
    parse_releases(text, path.suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)  # the server never reads half a file


@release_app.command("show")
def show(file: File = None) -> None:
    """Print the releases file's channels and calibrations."""
    path = _path(file)
    try:
        data = _read(path)
    except WrapserveError as error:
        fail(error.message)
    typer.echo(json.dumps(data, indent=2) if data else f"{path}: no channels")


@release_app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="The wrapper.")],
    version: Annotated[str, typer.Argument(help="The exact version to put on the channel, e.g. 1.1.0.")],
    channel: Annotated[str, typer.Option(help="The channel it takes.")] = "stable",
    file: File = None,
    model: Annotated[
        str | None, typer.Option(help="Judge eval runs on this model (default: the latest run's).")
    ] = None,
    home: Annotated[Path | None, typer.Option(help="Where the eval results live (WRAPSERVE_HOME).")] = None,
    wrappers_dir: Annotated[
        Path | None, typer.Option(help="Your wrapper modules (WRAPSERVE_WRAPPERS_DIR).")
    ] = None,
    skip_gate: Annotated[
        bool, typer.Option("--skip-gate", help="Promote without comparing evals (a rollback); says so.")
    ] = False,
) -> None:
    """Put VERSION on CHANNEL if its latest eval is at least as good as the channel's version's."""
    settings = settings_from(home=home, wrappers_dir=wrappers_dir)
    path = _path(file)
    console = Console()
    try:
        registry = WrapperRegistry(BUILTINS)
        for wrapper in load_directory(settings.wrappers_dir) if settings.wrappers_dir else []:
            registry.add(wrapper)
        if version not in {wrapper.version for wrapper in registry.versions(name)}:
            fail(f"{name} has no version {version!r} here (give the exact version)", code=2)
        data = _read(path)
        channels = data.setdefault(name, {}).setdefault("channels", {})
        on_channel = channels.get(channel, {})
        # A split channel serves each of its versions: the candidate must match every one.
        currents = [on_channel["version"]] if "version" in on_channel else list(on_channel.get("split", {}))
        if skip_gate:
            console.print(
                f"[yellow]gate skipped[/]: {name}@{version} takes {channel} without an eval comparison"
            )
        else:
            store = EvalStore(settings.state_db)
            for current in currents or [None]:
                decision = gate(store, name, version, current, model)
                if not decision.allowed:
                    fail(f"not promoted: {decision.reason}")
                console.print(f"gate passed: {decision.reason}", highlight=False)
        shadow = channels.get(channel, {}).get("shadow")
        channels[channel] = {
            "version": version,
            **({"shadow": shadow} if shadow and shadow != version else {}),
        }
        _write(path, data)
    except WrapserveError as error:
        fail(error.message)
    console.print(
        f"{name}@{channel} -> {version} in {path}; reload the server with `kill -HUP <pid>`", highlight=False
    )
