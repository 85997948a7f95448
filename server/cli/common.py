"""What every command group shares: one ``error:`` line and exit, settings from flags."""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from server.settings import Settings

__all__ = ["err", "fail", "settings_from"]

err = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """One ``error:`` line on stderr (never a traceback), then exit with ``code``."""
    err.print(f"[bold red]error:[/] {escape(' '.join(message.split()))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def settings_from(**overrides: Any) -> Settings:
    """Settings from the environment, with the flags that were given on top."""
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except Exception as error:  # pydantic's ValidationError: bad env or flag values
        fail(f"invalid configuration: {' '.join(str(error).split())}", code=2)
