"""What every command shares: the loaded settings and how to print."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console

from sparkhu.config import Settings
from sparkhu.errors import InputError

console = Console(highlight=False)

DatasetOption = Annotated[
    str | None,
    typer.Option(help="Dataset <source>_<measurement> (default: the only one configured, or in the lake)."),
]


@dataclass
class State:
    """Set by the root callback into ``typer.Context.obj``."""

    settings: Settings
    debug: bool = False


def state(ctx: typer.Context) -> State:
    """The root callback's state."""
    obj = ctx.find_root().obj
    assert isinstance(obj, State)  # set by sparkhu.cli.main.main, always before a command
    return obj


def parse_time(text: str | None, option: str) -> datetime | None:
    """ISO-8601 (``2024-01-01``, ``2024-01-01T06:00``, with or without offset; naive = UTC)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InputError(f"{text!r} is not an ISO-8601 time such as 2024-01-31T06:00Z", field=option) from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)
