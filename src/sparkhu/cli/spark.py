"""``sparkhu spark``: the tuning study's jobs, text generator, resource studies and the advisor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from sparkhu.cli.common import console, state

if TYPE_CHECKING:
    from sparkhu.sparkstudy.study import Study

spark_app = typer.Typer(
    help="Spark resource studies: sample jobs, grids of settings, advice.", no_args_is_help=True
)
jobs_app = typer.Typer(help="The tuning study's sample jobs.", no_args_is_help=True)
spark_app.add_typer(jobs_app, name="jobs")

JobArg = Annotated[str, typer.Argument(help="first_char or passwords.")]
SHOWN = ("setting", "status", "wall_s", "executors_max", "pending_max", "cpu_avg_pct", "mem_max_mb",
         "task_s", "gc_s", "cost", "time_x_cost")  # fmt: skip


@jobs_app.command("run")
def jobs_run(
    job: JobArg,
    input_uri: Annotated[str, typer.Option("--input", help="Text file of lines (path or URI).")],
    form: Annotated[str, typer.Option(help="udf, vectorised or embedded.")] = "embedded",
    master: Annotated[str, typer.Option(help="Spark master for the Spark forms.")] = "local[2]",
) -> None:
    """Run one job in one form and print its counts and throughput."""
    from sparkhu.sparkstudy import jobs

    jobs.check_job(job, form)
    if form == "embedded":
        result = jobs.run_embedded(job, input_uri)
    else:
        from sparkhu.engine.spark import SparkEngine

        engine = SparkEngine(master, app_name=f"sparkhu-{job}")
        try:
            with console.status(f"{job} ({form}) on {master}…"):
                result = jobs.run_spark(engine.session, job, form, input_uri)
        finally:
            engine.close()
    console.print(json.dumps(result.counts, ensure_ascii=False))
    console.print(
        f"{result.bytes / 1e6:,.1f} MB in {result.seconds:.2f} s: {result.mb_per_s:,.1f} MB/s ({form})"
    )


@spark_app.command("textgen")
def textgen_cmd(
    size: Annotated[str, typer.Option(help="Bytes to write, e.g. 100MB or 1GB.")],
    out: Annotated[Path, typer.Option(help="File to write.")],
    seed: Annotated[int, typer.Option(help="Same seed and size, same bytes.")] = 0,
) -> None:
    """Write password-like text with known answers (printed as JSON)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from sparkhu.sparkstudy import textgen

    total = textgen.parse_size(size)
    with Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
        TimeElapsedColumn(), console=console,
    ) as progress:  # fmt: skip
        task = progress.add_task(f"writing {out}", total=total)
        stats = textgen.generate(out, total, seed=seed, progress=lambda n: progress.advance(task, n))
    console.print(json.dumps({"bytes": stats.bytes, "lines": stats.lines, "strong": stats.strong}))


@spark_app.command("study")
def study_cmd(
    ctx: typer.Context,
    job: JobArg,
    grid: Annotated[Path, typer.Option(help="Grid file (TOML or JSON) of [[setting]]s and [prices].")],
    input_uri: Annotated[str, typer.Option("--input", help="Text file of lines (path or URI).")],
    form: Annotated[str, typer.Option(help="udf or vectorised.")] = "udf",
    workers: Annotated[int, typer.Option(help="Workers of the local cluster.")] = 2,
    worker_cores: Annotated[int, typer.Option(help="Cores per worker.")] = 1,
    worker_memory: Annotated[str, typer.Option(help="Memory per worker, e.g. 1g.")] = "1g",
    master: Annotated[
        str | None, typer.Option(help="Use this standalone master (spark://…) instead.")
    ] = None,
    master_ui: Annotated[
        str | None, typer.Option(help="Its web UI (http://host:8080), with --master.")
    ] = None,
    parallel: Annotated[bool, typer.Option(help="Run the settings side by side.")] = False,
    pend_timeout: Annotated[
        float, typer.Option(help="Seconds a run may wait for its first executor.")
    ] = 120.0,
    out: Annotated[Path | None, typer.Option(help="Folder for CSV, plots and logs.")] = None,
    check_advice: Annotated[bool, typer.Option(help="Advise from the first run and run the advice.")] = False,
) -> None:
    """Run JOB under every setting of the grid; print the table, write CSV, plots and the lake."""
    from sparkhu.errors import InputError
    from sparkhu.sparkstudy import jobs, report
    from sparkhu.sparkstudy.cluster import LocalCluster
    from sparkhu.sparkstudy.settings import load_grid
    from sparkhu.storage.lake import Lake

    settings = state(ctx).settings
    spec = load_grid(grid)
    jobs.check_job(job, form)
    jobs.input_size(input_uri)
    if (master is None) != (master_ui is None):
        raise InputError("give both --master and --master-ui, or neither (a local cluster)", field="master")
    folder = out or settings.home / "spark-study"
    cluster = None
    if master is None:
        cluster = LocalCluster(
            folder / "cluster", workers=workers, worker_cores=worker_cores, worker_memory=worker_memory
        )
        with console.status(f"starting a local cluster of {workers} worker(s)…"):
            cluster.start()
        master, master_ui = cluster.uri, cluster.ui
    assert master_ui is not None
    try:
        study = _run_with_progress(
            job, spec, input_uri, form, master, master_ui, folder, parallel, pend_timeout
        )
        target = folder / study.id
        _print_table(study)
        csv_path = report.write_csv(study, target / "runs.csv")
        plots = report.write_plots(study, target)
        report.write_lake(study, Lake(settings.storage.lake, layout=settings.storage.layout))
        console.print(
            f"CSV {csv_path}; plots {', '.join(str(p) for p in plots)}; lake analysis/{report.RUNS}"
        )
        if check_advice:
            _check_advice(study, job, form, input_uri, master, master_ui, target, pend_timeout)
    finally:
        if cluster is not None:
            cluster.stop()


def _run_with_progress(
    job: str, spec: Any, input_uri: str, form: str, master: str, master_ui: str, folder: Path,
    parallel: bool, pend_timeout: float,
) -> Study:  # fmt: skip
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from sparkhu.sparkstudy.cluster import workers_of
    from sparkhu.sparkstudy.study import run_study

    with Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn(), console=console
    ) as progress:
        tasks = {s.name: progress.add_task(f"{s.name}: waiting", total=1) for s in spec.settings}

        def update(name: str, row: dict[str, Any] | None) -> None:
            if row is None:
                progress.update(tasks[name], description=f"{name}: running")
            else:
                done = f"{row['wall_s']:.1f} s" if row["status"] == "ok" else row["reason"]
                progress.update(tasks[name], description=f"{name}: {row['status']} {done}", completed=1)

        return run_study(
            job, spec, input_uri, master=master, master_ui=master_ui, workers=workers_of(master_ui),
            workdir=folder, form=form, parallel=parallel, pend_timeout_s=pend_timeout, progress=update,
        )  # fmt: skip


def _print_table(study: Study) -> None:

    table = Table(title=f"study {study.id}: {study.job} ({study.form})")
    for column in SHOWN:
        table.add_column(column, justify="left" if column in ("setting", "status") else "right")
    for row in study.rows:
        table.add_row(*("" if row[c] is None else str(row[c]) for c in SHOWN))
    console.print(table)
    for row in study.rows:
        if row["reason"]:
            console.print(f"[yellow]{row['setting']}[/]: {row['reason']}")


def _check_advice(
    study: Study,
    job: str,
    form: str,
    input_uri: str,
    master: str,
    master_ui: str,
    folder: Path,
    timeout: float,
) -> None:
    from sparkhu.sparkstudy import advisor
    from sparkhu.sparkstudy.cluster import workers_of
    from sparkhu.sparkstudy.study import run_setting

    first = next((r for r in study.rows if r["status"] == "ok"), None)
    if first is None:
        console.print("[red]--check-advice[/]: no finished run to advise from")
        raise typer.Exit(1)
    console.print(f"advice from the run of {first['setting']}:")
    advice = advisor.advise(first["event_log"], workers=workers_of(master_ui))
    for line in advice.lines():
        console.print(line)
    n = advice.recommended.executor_instances
    predicted = advisor.advise(first["event_log"], counts=[n]).predicted_wall(n)
    with console.status(f"checking the advice: {n} executor(s)…"):
        row, _ = run_setting(
            advice.recommended, job, form, input_uri, master=master, master_ui=master_ui,
            workdir=folder / "advised", prices=study.prices, pend_timeout_s=timeout,
        )  # fmt: skip
    if row["status"] != "ok":  # the advice could not be checked: the command's work failed
        console.print(f"[red]advised setting did not finish[/]: {row['status']}: {row['reason']}")
        raise typer.Exit(1)
    measured = float(row["wall_s"])
    console.print(
        f"advised setting ({n} executor(s)): predicted {predicted:.1f} s, measured {measured:.1f} s "
        f"({(measured - predicted) / predicted:+.0%})"
    )


@spark_app.command("advise")
def advise_cmd(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Event log file or folder, or an application id of a study.")],
    master_ui: Annotated[
        str | None, typer.Option(help="The cluster's master UI, to diagnose pending.")
    ] = None,
) -> None:
    """Critical path, ideal executor count, predicted times and a recommended setting."""
    from sparkhu.errors import NotFoundError
    from sparkhu.sparkstudy import advisor
    from sparkhu.sparkstudy.cluster import workers_of

    path = Path(source)
    if not path.exists():
        folder = state(ctx).settings.home / "spark-study"
        found = sorted(folder.glob(f"*/events/{source}")) + sorted(
            folder.glob(f"*/events/eventlog_v2_{source}")
        )
        if not found:
            raise NotFoundError(f"{source}: no such event log, nor an application of a study under {folder}")
        path = found[-1]
    workers = workers_of(master_ui) if master_ui else None
    for line in advisor.advise(path, workers=workers).lines():
        console.print(line)
