"""Commands over data: ingest, replay, lake, series, predictions, runs, pipeline."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from sparkhu.app import ingest as ingesting
from sparkhu.app import pipelines
from sparkhu.app.runtime import Runtime
from sparkhu.cli.common import DatasetOption, console, state
from sparkhu.connectors.files import FileSourceSettings
from sparkhu.connectors.replay import ReplaySourceSettings
from sparkhu.errors import InputError, NotFoundError
from sparkhu.timeaxis import parse_time

if TYPE_CHECKING:
    from sparkhu.pipeline.runner import PlanStep, TaskRun

lake_app = typer.Typer(help="Look into and maintain the lake.", no_args_is_help=True)
pipeline_app = typer.Typer(help="Run the daily cleaning pipeline.", no_args_is_help=True)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} points"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


SourceOption = Annotated[str, typer.Option(help="Source name, first part of the series ids.")]
MeasurementOption = Annotated[str, typer.Option(help="Measurement, second part of the series ids.")]


def ingest(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="File, folder or glob of CSV/Parquet files.")],
    source: SourceOption,
    measurement: MeasurementOption,
    layout: Annotated[
        str, typer.Option(help="long (series_id,ts,value), wide (ts + one column per field), auto.")
    ] = "auto",
    file_format: Annotated[str, typer.Option("--format", help="csv, parquet or auto.")] = "auto",
    field_suffix: Annotated[str, typer.Option(help="Suffix of wide columns: WHE + .P → WHE.P")] = "",
    ts_column: Annotated[
        str | None, typer.Option(help="Timestamp column (default: UNIX_TS, ts or the first).")
    ] = None,
    ts_unit: Annotated[str, typer.Option(help="s, ms, us or iso.")] = "s",
    via_bus: Annotated[
        bool, typer.Option(help="Publish to the bus instead of writing the lake directly.")
    ] = False,
) -> None:
    """Ingest files into the lake's raw zone (resumable: finished files are skipped)."""
    spec = FileSourceSettings.of(
        name=f"file:{source}.{measurement}",
        path=path,
        source=source,
        measurement=measurement,
        format=file_format,
        layout=layout,
        field_suffix=field_suffix,
        ts_column=ts_column,
        ts_unit=ts_unit,
    )
    with Runtime(state(ctx).settings) as runtime, _progress() as progress:
        task = progress.add_task(f"ingest {path}", total=None)
        stats = ingesting.ingest(
            runtime, spec, via_bus=via_bus, progress=lambda n: progress.update(task, completed=n)
        )
    console.print(
        f"ingested [bold]{stats.points:,}[/] points in {stats.seconds:.1f} s"
        f" ({stats.points / max(stats.seconds, 1e-9):,.0f} points/s); "
        f"quarantined {stats.quarantined:,} record(s)"
        + (f" → see `sparkhu lake quarantine {spec.dataset}`" if stats.quarantined else "")
    )


def replay(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="File(s) of history to replay as live data.")],
    source: SourceOption,
    measurement: MeasurementOption,
    speed: Annotated[float, typer.Option(help="Data seconds per wall second.")] = 60.0,
    shift: Annotated[str, typer.Option(help="end_now, start_now or an offset such as +3196d.")] = "start_now",
    field_suffix: Annotated[str, typer.Option()] = "",
    duration: Annotated[float | None, typer.Option(help="Stop after this many wall seconds.")] = None,
) -> None:
    """Replay history onto the bus at real time × speed, shifted on the time axis."""
    spec = ReplaySourceSettings.of(
        name=f"replay:{source}.{measurement}",
        path=path,
        source=source,
        measurement=measurement,
        speed=speed,
        shift=shift,
        field_suffix=field_suffix,
    )
    stop = threading.Event()
    if duration is not None:
        threading.Timer(duration, stop.set).start()
    with Runtime(state(ctx).settings) as runtime, _progress() as progress:
        task = progress.add_task(f"replay ×{speed:g} → {runtime.topic(source, measurement)}", total=None)
        try:
            stats = ingesting.publish(
                runtime, spec, stop=stop, progress=lambda n: progress.update(task, completed=n)
            )
        finally:
            stop.set()
    console.print(f"replayed {stats.points:,} points")


def series(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Only ids starting with this.")] = "",
    limit: Annotated[int, typer.Option(min=1)] = 100,
) -> None:
    """List the series the catalog knows."""
    with Runtime(state(ctx).settings) as runtime:
        rows = runtime.catalog.list_series(prefix=prefix, limit=limit)
    table = Table("series", "unit", "period", "first", "last", "points")
    for info in rows:
        table.add_row(
            info.series_id,
            info.unit or "",
            f"{info.period_s:g} s" if info.period_s else "",
            _fmt(info.first_ts),
            _fmt(info.last_ts),
            f"{info.count:,}",
        )
    console.print(table)


def predictions(
    ctx: typer.Context,
    series_id: Annotated[str, typer.Argument(help="Series id, e.g. ampds2/electricity/WHE.P")],
    start: Annotated[str | None, typer.Option(help="From (ISO-8601, UTC if naive).")] = None,
    end: Annotated[str | None, typer.Option(help="Until (exclusive).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 50,
) -> None:
    """Show blended forecasts of one series."""
    with Runtime(state(ctx).settings) as runtime:
        runtime.catalog.series(series_id)  # NotFoundError for an unknown id
        table = runtime.predictions.blended(
            series_id, start=parse_time(start, "--start"), end=parse_time(end, "--end"), limit=limit
        )
    out = Table("target", "value", "lower", "upper", "updates")
    for row in table.to_pylist():
        out.add_row(
            _fmt(row["target_ts"]),
            f"{row['value']:.2f}",
            _num(row["lower"]),
            _num(row["upper"]),
            str(row["updates"]),
        )
    console.print(out)


def runs(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="pipeline, connector, train, ...")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
) -> None:
    """Recent run records, newest first."""
    with Runtime(state(ctx).settings) as runtime:
        records = runtime.catalog.runs(kind=kind, limit=limit)
    table = Table("started", "kind", "name", "series", "status", "rows in", "rows out", "error")
    for r in records:
        table.add_row(
            _fmt(r.started_at),
            r.kind,
            r.name,
            r.series_id or "",
            r.status,
            _num(r.rows_in, "{:,}"),
            _num(r.rows_out, "{:,}"),
            (r.error or "")[:60],
        )
    console.print(table)


@lake_app.command("ls")
def lake_ls(ctx: typer.Context, zone: Annotated[str | None, typer.Argument()] = None) -> None:
    """Datasets and their partitions."""
    with Runtime(state(ctx).settings) as runtime:
        table = Table("zone", "dataset", "partitions", "files", "rows", "MB", "corrupt")
        corrupt: list[str] = []
        for z, dataset in runtime.lake.datasets(zone):
            parts = runtime.lake.partitions(z, dataset)
            bad = [path for p in parts for path in p.corrupt]
            corrupt += bad
            table.add_row(
                z,
                dataset,
                str(len(parts)),
                str(sum(p.files for p in parts)),
                f"{sum(p.rows for p in parts):,}",
                f"{sum(p.bytes for p in parts) / 1e6:,.1f}",
                f"[red]{len(bad)}[/red]" if bad else "0",
            )
    console.print(table)
    for path in corrupt:
        console.print(
            f"[red]corrupt[/red] {path}: not a readable Parquet file; delete it or move it out of the lake"
        )


@lake_app.command("compact")
def lake_compact(
    ctx: typer.Context,
    zone: Annotated[str, typer.Argument(help="raw, clean, ...")],
    dataset: Annotated[str, typer.Argument()],
) -> None:
    """Rewrite each partition as one sorted file without duplicates."""
    with Runtime(state(ctx).settings) as runtime:
        before = runtime.lake.partitions(zone, dataset)
        after = runtime.lake.compact(zone, dataset)
        runtime.catalog.register_partitions(zone, dataset, after)
    files_before, files_after = sum(p.files for p in before), sum(p.files for p in after)
    rows_before, rows_after = sum(p.rows for p in before), sum(p.rows for p in after)
    console.print(
        f"compacted {len(after)} partition(s): {files_before} → {files_after} files,"
        f" {rows_before:,} → {rows_after:,} rows"
    )


@lake_app.command("read")
def lake_read(
    ctx: typer.Context,
    zone: Annotated[str, typer.Argument()],
    dataset: Annotated[str, typer.Argument()],
    series_id: Annotated[list[str] | None, typer.Option("--series", help="Repeatable.")] = None,
    start: Annotated[str | None, typer.Option()] = None,
    end: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
) -> None:
    """Print points of a dataset."""
    with Runtime(state(ctx).settings) as runtime:
        points = runtime.lake.read(
            zone, dataset, series=series_id, start=parse_time(start, "--start"), end=parse_time(end, "--end")
        )
    table = Table("series", "ts", "value", title=f"{points.num_rows:,} points")
    for row in points.slice(0, limit).to_pylist():
        table.add_row(str(row["series_id"]), _fmt(row["ts"]), _num(row["value"]))
    console.print(table)


@lake_app.command("quarantine")
def lake_quarantine(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument()],
    limit: Annotated[int, typer.Option(min=1)] = 20,
) -> None:
    """Records that were set aside, with their reason."""
    with Runtime(state(ctx).settings) as runtime:
        records = runtime.lake.read_quarantine(dataset)
    table = Table("source", "where", "field", "reason", "raw", title=f"{records.num_rows:,} record(s)")
    for row in records.slice(0, limit).to_pylist():
        table.add_row(
            row["source"], row["location"], row["field"] or "", row["reason"], (row["raw"] or "")[:50]
        )
    console.print(table)


@pipeline_app.command("run")
def pipeline_run(
    ctx: typer.Context,
    dataset: DatasetOption = None,
    start: Annotated[str | None, typer.Option(help="First day (default: yesterday, UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="Last day, inclusive (default: start).")] = None,
    day: Annotated[
        str | None, typer.Option(help="One day (YYYY-MM-DD): --start and --end at once (a logical date).")
    ] = None,
    task: Annotated[
        list[str] | None, typer.Option("--task", help="Only this task and its downstream (repeatable).")
    ] = None,
    only: Annotated[
        bool, typer.Option("--only", help="Run exactly the --task(s), not their downstream.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; touch nothing.")] = False,
    days_per_run: Annotated[int, typer.Option(min=1, help="Days per task batch (back-fills).")] = 1,
) -> None:
    """Run the daily cleaning DAG for days [start, end]; outputs are replaced, never duplicated.

    Exits 1 when a task-day failed (the reports say why), 2 on a usage error or a dataset with no data.
    """
    if day is not None and (start is not None or end is not None):
        raise InputError("--day is one day: give it alone, or --start/--end", field="--day")
    if only and not task:
        raise InputError("--only runs exactly the --task(s) named: name at least one", field="--only")
    start = day if day is not None else start
    first = parse_time(start, "--day" if day is not None else "--start") or (
        datetime.now(UTC) - timedelta(days=1)
    )
    last = parse_time(end, "--end") or first
    if last < first:
        raise InputError(f"--end {last.date()} is before --start {first.date()}", field="--end")
    settings = state(ctx).settings
    with Runtime(settings) as runtime:
        progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} days"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
        )
        bars: dict[str, TaskID] = {}
        lock = threading.Lock()

        def advance(run: TaskRun) -> None:
            with lock:
                progress.update(bars[run.task], advance=1)
                if run.status == "failed":  # a later success of the same task keeps it marked
                    progress.update(bars[run.task], status="[red]failed")

        runner = pipelines.daily(runtime, dataset, on_progress=advance, days_per_run=days_per_run)
        steps = runner.plan(first.date(), last.date(), tasks=task, downstream=not only)
        if dry_run:
            _print_plan(steps)
            return
        if runner.first_day() is None:
            # A misspelt --dataset or an empty home would otherwise "succeed" at cleaning nothing.
            where = runner.datasets.spec("raw")
            raise NotFoundError(
                f"--dataset {runner.dataset}: no data in the lake's {where.zone}/{where.name} "
                f"({settings.storage.lake}); ingest some first, or name another dataset"
            )
        with progress:
            for step in steps:
                if step.task not in bars:
                    total = sum(1 for s in steps if s.task == step.task)
                    bars[step.task] = progress.add_task(step.task, total=total, status="")
            summary = runner.run(first.date(), last.date(), tasks=task, downstream=not only)
    table = Table("task", "day", "status", "series", "skipped", "failed", "rows in", "rows out", "s")
    for r in summary.runs:
        table.add_row(
            r.task,
            str(r.start.date()),
            r.status,
            str(len(r.series)),
            str(r.count("skipped")),
            str(r.count("failed")),
            f"{r.rows_in:,}",
            f"{sum(r.rows_out.values()):,}",
            f"{r.seconds:.2f}",
        )
    console.print(table)
    console.print(f"{summary.status}: {len(summary.runs)} task-day(s) in {summary.seconds:.1f} s")
    for r in summary.runs:
        if r.status != "success":
            console.print(
                f"[red]{r.task} {r.start.date()} failed[/]: {r.error or 'see its report'}", soft_wrap=True
            )
    folders = sorted({str(path.parent) for r in summary.runs for path in r.reports})
    if folders:
        console.print("reports: " + ", ".join(f"{folder}/index.html" for folder in folders), soft_wrap=True)
    if summary.status != "success":
        raise typer.Exit(1)


def _print_plan(steps: list[PlanStep]) -> None:
    table = Table("level", "task", "interval", "reads (with look-back)", "writes", title="plan (dry run)")
    for s in steps:
        reads = "\n".join(f"{where} from {since:%Y-%m-%d %H:%M}" for _, where, since in s.reads)
        table.add_row(
            str(s.level),
            s.task,
            f"{s.start:%Y-%m-%d} → {s.end:%Y-%m-%d}",
            reads,
            "\n".join(where for _, where in s.writes),
        )
    console.print(table)


@pipeline_app.command("show")
def pipeline_show(ctx: typer.Context, dataset: DatasetOption = None) -> None:
    """Draw the DAG level by level with each task's last run."""
    from rich.tree import Tree

    with Runtime(state(ctx).settings) as runtime:
        runner = pipelines.daily(runtime, dataset)
        last = runner.last_runs()
    dag = runner.dag
    tree = Tree(f"[bold]daily DAG of {runner.dataset}[/] (raw → …)")
    colours = {"success": "green", "failed": "red", "skipped": "yellow", "running": "blue"}
    for number, level in enumerate(dag.levels):
        branch = tree.add(f"level {number}")
        for t in level:
            record = last.get(t.name)
            if record is None:
                status = "[dim]never run[/]"
            else:
                colour = colours.get(record.status, "white")
                day = record.interval_start.date() if record.interval_start else "?"
                status = f"[{colour}]{record.status}[/] {day} ({_fmt(record.finished_at)})"
            after = ", ".join(dag.upstream(t)) or "raw"
            outs = ", ".join(t.outputs.values())
            branch.add(f"[bold]{t.name}[/] ← {after} → {outs}  {status}")
    console.print(tree)


@pipeline_app.command("reports")
def pipeline_reports(
    ctx: typer.Context,
    dataset: DatasetOption = None,
    day: Annotated[str | None, typer.Option(help="Only this day (YYYY-MM-DD).")] = None,
) -> None:
    """List the report folders (JSON + HTML per task and day)."""
    import json

    settings = state(ctx).settings
    with Runtime(settings) as runtime:
        root = Path(settings.home) / "reports" / runtime.resolve_dataset(dataset)
    folders = sorted(p for p in root.glob("*") if p.is_dir()) if root.exists() else []
    if day is not None:
        folders = [p for p in folders if p.name.startswith(day)]
    if not folders:
        console.print(f"no reports under {root}; run `sparkhu pipeline run` first")
        return
    table = Table("day", "tasks", "failed", "index")
    for folder in folders:
        docs = []
        for path in sorted(folder.glob("*.json")):
            try:
                docs.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        failed = [d["task"] for d in docs if d.get("status") != "success"]
        table.add_row(folder.name, str(len(docs)), ", ".join(failed), str(folder / "index.html"))
    console.print(table)


def _fmt(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _num(value: float | int | None, form: str = "{:.3f}") -> str:
    return "" if value is None else form.format(value)


__all__ = ["Path", "lake_app", "pipeline_app"]
