"""Commands over data: ingest, replay, lake, series, predictions, runs, pipeline."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from sparkhu.cli.common import DatasetOption, console, err_console, open_runtime, progress_bar, state

if TYPE_CHECKING:
    from rich.progress import TaskID

    from sparkhu.pipeline.runner import PlanStep, TaskRun
    from sparkhu.storage.catalog import RunRecord

lake_app = typer.Typer(help="Look into and maintain the lake.", no_args_is_help=True)
pipeline_app = typer.Typer(help="Run the daily cleaning pipeline.", no_args_is_help=True)


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
    from sparkhu.app import ingest as ingesting
    from sparkhu.connectors.files import FileSourceSettings

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
    with open_runtime(ctx) as runtime, progress_bar() as progress:
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
    speed: Annotated[
        float | None,
        typer.Option(help="Data seconds per wall second (default: as a [[sources]] replay, 60)."),
    ] = None,
    shift: Annotated[
        str | None,
        typer.Option(help="end_now (default), start_now or an offset such as +3196d; see docs/replay.md."),
    ] = None,
    field_suffix: Annotated[str, typer.Option()] = "",
    duration: Annotated[float | None, typer.Option(help="Stop after this many wall seconds.")] = None,
    to_lake: Annotated[
        bool, typer.Option("--lake/--bus-only", help="Land the points in the lake's raw zone as they play.")
    ] = True,
) -> None:
    """Replay history as live data: onto the bus at real time × speed, shifted on the time axis, and
    into the lake's raw zone (as `sparkhu up` lands a replay source). Same defaults as a replay source."""
    from sparkhu.app import ingest as ingesting
    from sparkhu.connectors.replay import ReplaySourceSettings

    given = {"speed": speed, "shift": shift}
    spec = ReplaySourceSettings.of(
        name=f"replay:{source}.{measurement}",
        kind="replay",
        path=path,
        source=source,
        measurement=measurement,
        field_suffix=field_suffix,
        **{key: value for key, value in given.items() if value is not None},
    )
    stop = threading.Event()
    timer = threading.Timer(duration, stop.set) if duration is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    with open_runtime(ctx) as runtime, progress_bar() as progress:
        where = runtime.topic(source, measurement) + (f" → raw/{spec.dataset}" if to_lake else "")
        task = progress.add_task(f"replay ×{spec.speed:g} ({spec.shift}) → {where}", total=None)
        try:
            stats, landed = ingesting.replay(
                runtime,
                spec,
                to_lake=to_lake,
                stop=stop,
                progress=lambda n: progress.update(task, completed=n),
            )
        finally:
            stop.set()
            if timer is not None:
                timer.cancel()
    if to_lake:
        console.print(f"replayed {stats.points:,} points; {landed:,} landed in raw/{spec.dataset}")
    else:
        console.print(
            f"replayed {stats.points:,} points onto {runtime.topic(source, measurement)} (--bus-only: "
            "a running `sparkhu up` lands them in the lake)"
        )


def series(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Only ids starting with this.")] = "",
    limit: Annotated[int, typer.Option(min=1)] = 100,
) -> None:
    """List the series the catalog knows."""
    with open_runtime(ctx) as runtime:
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
    from sparkhu.timeaxis import parse_time

    with open_runtime(ctx) as runtime:
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
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Rows to show.")] = 20,
    each: Annotated[
        bool, typer.Option("--each", help="One row per run record instead of one per task and status.")
    ] = False,
) -> None:
    """Recent runs, newest first. Records of one task and status (the correlation task's one per day,
    a task's one per series) are one row with their count, series and days; --each lists them all."""
    with open_runtime(ctx) as runtime:
        records = runtime.catalog.runs(kind=kind, limit=limit if each else min(limit * 100, 10_000))
    groups = [[r] for r in records] if each else group_runs(records)[:limit]
    table = Table("last started", "kind", "name", "series", "status", "runs", "days", "rows in", "rows out")
    table.add_column("error", max_width=60)
    for group in groups:
        r = group[0]
        series_ids = {g.series_id for g in group if g.series_id}
        table.add_row(
            _fmt(r.started_at),
            r.kind,
            r.name,
            next(iter(series_ids))
            if len(series_ids) == 1
            else f"{len(series_ids)} series"
            if series_ids
            else "",
            r.status,
            str(len(group)),
            _interval(group),
            _num(_total(g.rows_in for g in group), "{:,}"),
            _num(_total(g.rows_out for g in group), "{:,}"),
            r.error or "",
        )
    console.print(table)


def group_runs(records: list[RunRecord]) -> list[list[RunRecord]]:
    """Records (newest first) of one kind, name, status and error, grouped; groups ordered by their
    newest record.

    >>> from datetime import datetime
    >>> from sparkhu.storage.catalog import RunRecord
    >>> at = datetime(2024, 1, 1)
    >>> rs = [RunRecord(str(i), "pipeline", n, "success", at) for i, n in enumerate("aba")]
    >>> [(g[0].name, len(g)) for g in group_runs(rs)]
    [('a', 2), ('b', 1)]
    """
    groups: dict[tuple[str, str, str, str | None], list[RunRecord]] = {}
    for r in records:
        groups.setdefault((r.kind, r.name, r.status, r.error), []).append(r)
    return list(groups.values())


def _total(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _interval(group: list[RunRecord]) -> str:
    starts = [r.interval_start for r in group if r.interval_start is not None]
    ends = [r.interval_end for r in group if r.interval_end is not None]
    if not starts:
        return ""
    first, last = min(starts), max(ends) if ends else max(starts)
    if last - first <= timedelta(days=1):
        return f"{first:%Y-%m-%d}"
    return f"{first:%Y-%m-%d} → {last - timedelta(microseconds=1):%Y-%m-%d}"


@lake_app.command("ls")
def lake_ls(ctx: typer.Context, zone: Annotated[str | None, typer.Argument()] = None) -> None:
    """Datasets and their partitions."""
    with open_runtime(ctx) as runtime:
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
    with open_runtime(ctx) as runtime:
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
    zone: Annotated[str, typer.Argument(help="raw, clean, analysis, ... (see `sparkhu lake ls`).")],
    dataset: Annotated[str, typer.Argument(help="A dataset of the zone, e.g. ampds2_electricity.anomalies.")],
    series_id: Annotated[list[str] | None, typer.Option("--series", help="Repeatable.")] = None,
    start: Annotated[str | None, typer.Option()] = None,
    end: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
) -> None:
    """Print the rows of a dataset: points (series, ts, value) or any table the pipeline writes
    (anomalies, correlation, stats, ...) with all its columns."""
    from sparkhu.timeaxis import parse_time

    since, until = parse_time(start, "--start"), parse_time(end, "--end")
    with open_runtime(ctx) as runtime:
        lake = runtime.lake
        if (zone, dataset) not in lake.datasets(zone):
            from sparkhu.errors import NotFoundError

            there = ", ".join(name for _, name in lake.datasets(zone)) or "none yet"
            raise NotFoundError(f"no dataset {zone}/{dataset} in the lake; {zone} holds: {there}")
        columns = lake.columns(zone, dataset)
        is_points = set(columns) <= {"series_id", "ts", "value"}
        if is_points:  # de-duplicated on (series_id, ts)
            rows = lake.read(zone, dataset, series=series_id, start=since, end=until)
        else:
            rows = lake.read_table(zone, dataset, series=series_id, start=since, end=until)
    names = rows.column_names
    title = f"{rows.num_rows:,} {'points' if is_points else 'rows'}"
    table = Table(*("series" if n == "series_id" else n for n in names), title=title)
    for row in rows.slice(0, limit).to_pylist():
        table.add_row(*(_cell(row[n]) for n in names))
    console.print(table)


def _cell(value: object) -> str:
    if isinstance(value, datetime):
        return _fmt(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list) and len(value) > 6:
        return f"[{', '.join(_cell(v) for v in value[:6])}, … {len(value)} values]"
    return "" if value is None else str(value)


@lake_app.command("quarantine")
def lake_quarantine(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument()],
    limit: Annotated[int, typer.Option(min=1)] = 20,
) -> None:
    """Records that were set aside, with their reason."""
    with open_runtime(ctx) as runtime:
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

    Exits 1 when a task-day failed (the reports say why), 2 on a usage error or a dataset with no data;
    days without raw points are nothing to run (exit 0, said so).
    """
    from sparkhu.app import pipelines
    from sparkhu.errors import InputError, NotFoundError
    from sparkhu.timeaxis import parse_time

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
    with open_runtime(ctx) as runtime:
        bars: dict[str, TaskID] = {}
        lock = threading.Lock()
        progress = progress_bar(unit="days")

        def advance(run: TaskRun) -> None:
            with lock:
                progress.update(bars[run.task], advance=1)
                if run.status == "failed":  # a later success of the same task keeps it marked
                    progress.update(bars[run.task], status="failed")

        runner = pipelines.daily(runtime, dataset, on_progress=advance, days_per_run=days_per_run)
        steps = runner.plan(first.date(), last.date(), tasks=task, downstream=not only)
        if dry_run:
            _print_plan(steps)
            return
        where = runner.datasets.spec("raw")
        days = pipelines.days_in(runtime, where.zone, where.name)
        if not days:
            # A misspelt --dataset or an empty home would otherwise "succeed" at cleaning nothing.
            raise NotFoundError(
                f"--dataset {runner.dataset}: no data in the lake's {where.zone}/{where.name} "
                f"({settings.storage.lake}); ingest some first, or name another dataset"
            )
        if not any(first.date() <= d <= last.date() for d in days):
            span = f"{first.date()}" + (f" → {last.date()}" if last.date() != first.date() else "")
            console.print(
                f"nothing to run: {where.zone}/{where.name} has no points on {span}; its data spans "
                f"{days[0]} → {days[-1]} (give --start/--end, e.g. --start {days[0]} --end {days[-1]})",
                soft_wrap=True,
            )
            return
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
    failed = [r for r in summary.runs if r.status != "success"]
    console.print(
        f"{summary.status}: {len(summary.runs)} task-day(s) in {summary.seconds:.1f} s"
        + (f", {len(failed)} failed" if failed else "")
    )
    for r in failed:
        err_console.print(
            f"[red]{r.task} {r.start.date()} failed[/]: {r.error or 'see its report'}"
            + (f" (report: {r.reports[0]})" if r.reports else ""),
            soft_wrap=True,
        )
    folders = sorted({str(path.parent) for r in summary.runs for path in r.reports})
    if folders:
        console.print("reports: " + ", ".join(f"{folder}/index.html" for folder in folders), soft_wrap=True)
    if failed:
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

    from sparkhu.app import pipelines

    with open_runtime(ctx) as runtime:
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
    with open_runtime(ctx) as runtime:
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
