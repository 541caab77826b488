"""What every command shares: the loaded settings and how to print."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Console

from sparkhu.config import Settings

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
