"""What every command shares: the loaded settings and how to print."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn, TaskID

    from sparkhu.app.runtime import Runtime
    from sparkhu.config import Settings

PIPED_WIDTH = 240
"""Width of tables when the output is not a terminal: whole series ids, never cut at 80 columns."""


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    piped = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(highlight=False, stderr=stderr, width=PIPED_WIDTH if piped else None)


console = _console()
err_console = _console(stderr=True)

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


def open_runtime(ctx: typer.Context) -> Runtime:
    """The runtime of the command's settings (imported here, when a command runs, not at start-up)."""
    from sparkhu.app.runtime import Runtime

    return Runtime(state(ctx).settings)


class PlainProgress:
    """Progress for output that is not a terminal (a log, a pipe, CI): one plain line per task every
    ``every_s`` seconds and when it ends, instead of a bar nobody sees. The subset of
    :class:`rich.progress.Progress` the commands use.

    >>> with PlainProgress(every_s=0) as progress:
    ...     task = progress.add_task("ingest", total=None, unit="points")
    ...     progress.update(task, completed=1200)
    ingest: 1,200 points (0 s)
    ingest: 1,200 points (0 s)
    """

    def __init__(
        self, every_s: float = 10.0, print_line: Callable[[str], None] = print, *, unit: str = ""
    ) -> None:
        self.every_s, self.unit = every_s, unit
        self._print = print_line
        self._tasks: dict[TaskID, dict[str, Any]] = {}
        self._started = time.monotonic()
        self._lock = threading.Lock()

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> TaskID:
        """Start a task; returns its id."""
        with self._lock:
            task_id = cast("TaskID", len(self._tasks))
            self._tasks[task_id] = {
                "description": description, "total": total, "completed": 0.0, "printed": time.monotonic(),
                "unit": fields.pop("unit", self.unit), "fields": fields,
            }  # fmt: skip
            return task_id

    def update(
        self,
        task_id: TaskID,
        *,
        completed: float | None = None,
        advance: float | None = None,
        total: float | None = None,
        description: str | None = None,
        **fields: Any,
    ) -> None:
        """Move a task on; prints its line when ``every_s`` passed since its last one."""
        with self._lock:
            task = self._tasks[task_id]
            if completed is not None:
                task["completed"] = completed
            if advance is not None:
                task["completed"] += advance
            if total is not None:
                task["total"] = total
            if description is not None:
                task["description"] = description
            task["fields"].update(fields)
            if time.monotonic() - task["printed"] >= self.every_s:
                self._line(task)

    def _line(self, task: dict[str, Any]) -> None:
        task["printed"] = time.monotonic()
        done = f"{task['completed']:,.0f}" + (f"/{task['total']:,.0f}" if task["total"] else "")
        extra = " ".join(str(v) for v in task["fields"].values() if v)
        text = f"{task['description']}: {done} {task['unit']}".rstrip()
        self._print(f"{text} ({time.monotonic() - self._started:.0f} s)" + (f" {extra}" if extra else ""))

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            for task in self._tasks.values():
                self._line(task)


def progress_bar(*columns: str | ProgressColumn, unit: str = "points") -> Progress | PlainProgress:
    """A rich progress bar on a terminal, :class:`PlainProgress` lines otherwise. ``columns`` are extra
    rich columns after the bar (default: the count of ``unit``)."""
    if not console.is_terminal:
        return PlainProgress(
            print_line=lambda line: console.print(line, soft_wrap=True, markup=False), unit=unit
        )
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    shown = columns or (TextColumn("{task.completed:,.0f} " + unit),)
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        *shown,
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
