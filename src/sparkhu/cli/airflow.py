"""``sparkhu airflow``: sparkhu's jobs as Airflow DAG files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sparkhu.cli.common import console, state

airflow_app = typer.Typer(help="Run sparkhu's jobs from Airflow.", no_args_is_help=True)

OPERATORS = ("subprocess", "inprocess", "spark-submit")
GROUPINGS = ("task", "task-group")


@airflow_app.command("dags")
def dags(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", help="Folder to write the DAG files to (Airflow's dags folder).")
    ],
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="Source dataset (repeatable; default: every one).")
    ] = None,
    group_by: Annotated[
        str,
        typer.Option("--group-by", help="task: one Airflow task per pipeline task; task-group: per group."),
    ] = "task",
    operator: Annotated[
        str | None, typer.Option(help="subprocess, inprocess or spark-submit (default: [airflow] operator).")
    ] = None,
    job: Annotated[
        list[str] | None,
        typer.Option("--job", help="Only these DAG builders (repeatable): pipeline, train, ..."),
    ] = None,
    sparkhu: Annotated[
        str | None, typer.Option(help="Command the workers run sparkhu with (default: [airflow] sparkhu).")
    ] = None,
) -> None:
    """Write one Airflow DAG file per job and dataset; parsing them does no work (no sparkhu import)."""
    from sparkhu.app.runtime import Runtime
    from sparkhu.errors import InputError
    from sparkhu.orchestrate.generate import generate

    if group_by not in GROUPINGS:
        raise InputError(
            f"--group-by {group_by!r}: expected one of {', '.join(GROUPINGS)}", field="--group-by"
        )
    if operator is not None and operator not in OPERATORS:
        raise InputError(
            f"--operator {operator!r}: expected one of {', '.join(OPERATORS)}", field="--operator"
        )
    settings = state(ctx).settings
    config = Path(ctx.find_root().params.get("config") or "sparkhu.toml")
    with Runtime(settings) as runtime:
        written = generate(
            runtime,
            out,
            builders=job,
            datasets=dataset or (),
            group_by=group_by,  # type: ignore[arg-type]  # checked above
            operator=operator,  # type: ignore[arg-type]
            config_path=config,
            sparkhu=sparkhu,
        )
    table = Table("DAG", "schedule", "start", "tasks", "file")
    for g in written:
        table.add_row(
            g.spec.dag_id, g.spec.schedule, str(g.spec.start_date), str(len(g.spec.tasks)), str(g.path)
        )
    console.print(table, soft_wrap=True)
    console.print(
        f"wrote {len(written)} DAG file(s) to {out}; point Airflow's dags_folder there or copy them"
    )
