"""``sparkhu connectors``: declared connectors — list with status, declare, pause, resume, restart, delete.

The same declarations as the REST API (``/connectors``), kept in the catalog; a running ``sparkhu up``
or ``serve`` picks a change up within a second. ``put`` takes Kafka Connect's JSON (``{"name", "config"}``
or the config alone) from a file or ``-`` for standard input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from sparkhu.cli.common import console, open_runtime
from sparkhu.errors import InputError

if TYPE_CHECKING:
    from sparkhu.app.runtime import Runtime
    from sparkhu.connectors.declared import DeclaredConnectors

connectors_app = typer.Typer(
    help="Connectors declared at run time (Kafka Connect's shape): status, declare, pause, resume.",
    no_args_is_help=True,
)


def _declared(ctx: typer.Context) -> tuple[Runtime, DeclaredConnectors]:
    # imported when a command runs, not at start-up
    from sparkhu.connectors.declared import DeclaredConnectors

    runtime = open_runtime(ctx)
    return runtime, DeclaredConnectors(runtime.catalog)


@connectors_app.command("list")
def list_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Each connector: state, tasks, points, throughput, watermark, lag, quarantined records."""
    runtime, declared = _declared(ctx)
    with runtime:
        rows: list[dict[str, Any]] = []
        for item in declared.all():
            status = declared.status(item.name)
            rows.append(
                {
                    "name": item.name,
                    "class": item.config.get("connector.class"),
                    "state": status.state,
                    "tasks": status.tasks,
                }
            )
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table("name", "class", "state", "task", "points", "points/s", "watermark", "lag s", "quarantined")
    for row in rows:
        tasks = row["tasks"] or [{}]
        for task in tasks:
            watermark = task.get("watermark")
            table.add_row(
                row["name"],
                str(row["class"]),
                task.get("state", row["state"]) if task else row["state"],
                str(task.get("name", "-")),
                str(task.get("points", "-")),
                str(task.get("points_per_s", "-")),
                watermark if isinstance(watermark, str) else json.dumps(watermark) if watermark else "-",
                str(task.get("lag_s", "-")),
                str(task.get("quarantined", "-")),
            )
            if task.get("trace"):
                table.add_row("", "", "", "", "", "", f"[red]{task['trace']}[/red]", "", "")
    console.print(table)


@connectors_app.command("put")
def put_cmd(
    ctx: typer.Context,
    path: Annotated[
        str, typer.Argument(help="A JSON file of {name, config} (or the config), or - for stdin.")
    ],
    name: Annotated[str | None, typer.Option(help="The connector's name (when the JSON has none).")] = None,
) -> None:
    """Declare a connector or change its config."""
    text = sys.stdin.read() if path == "-" else _read(path)
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{path}: not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InputError(f"{path}: expected a JSON object")
    config = body.get("config", body)
    chosen = name or body.get("name") or (config.get("name") if isinstance(config, dict) else None)
    if not isinstance(chosen, str) or not isinstance(config, dict):
        raise InputError(f'{path}: name the connector (a "name" key or --name) and give its "config" object')
    runtime, declared = _declared(ctx)
    with runtime:
        created = declared.put(chosen, config)
    console.print(f"connector {chosen} {'declared' if created else 'changed'}")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _action(ctx: typer.Context, name: str, verb: str) -> None:
    runtime, declared = _declared(ctx)
    with runtime:
        if verb == "pause":
            declared.set_state(name, "PAUSED")
        elif verb == "resume":
            declared.set_state(name, "RUNNING")
        elif verb == "restart":
            declared.restart(name)
        else:
            declared.delete(name)
    console.print(f"connector {name}: {verb}d" if verb.endswith("e") else f"connector {name}: {verb}ed")


@connectors_app.command("pause")
def pause_cmd(ctx: typer.Context, name: str) -> None:
    """Pause a connector (its watermark stays; resume continues from it)."""
    _action(ctx, name, "pause")


@connectors_app.command("resume")
def resume_cmd(ctx: typer.Context, name: str) -> None:
    """Resume a paused connector."""
    _action(ctx, name, "resume")


@connectors_app.command("restart")
def restart_cmd(ctx: typer.Context, name: str) -> None:
    """Restart a connector (a failed one starts again)."""
    _action(ctx, name, "restart")


@connectors_app.command("delete")
def delete_cmd(ctx: typer.Context, name: str) -> None:
    """Forget a connector (its watermarks stay: declaring it again resumes)."""
    _action(ctx, name, "delete")
