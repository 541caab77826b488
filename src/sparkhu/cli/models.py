"""Commands over models: train (back-test, register, forecast), predict, models (the registry view)."""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from sparkhu.cli.common import DatasetOption, console, err_console, open_runtime, state

if TYPE_CHECKING:
    from sparkhu.app.runtime import Runtime

MODELS_PAGE = "/#/models"
"""The dashboard's page of the registry (champions, challengers, history, back-tests)."""


def _show(table: Table) -> None:
    """Print a table (piped output is wide: see :data:`sparkhu.cli.common.PIPED_WIDTH`)."""
    console.print(table)


def catch_up_or_warn(runtime: Runtime, dataset: str, *, catch_up: bool) -> None:
    """Raw days newer than the clean zone (the pipeline has not run for them): with ``catch_up`` run the
    daily pipeline over them first; otherwise say that the clean zone is behind and how to catch up."""
    from sparkhu.app import pipelines

    stale = pipelines.stale_days(runtime, dataset)
    if not stale:
        return
    days = f"{stale[0]}" + (f" → {stale[-1]}" if len(stale) > 1 else "")
    if not catch_up:
        err_console.print(
            f"[yellow]warning[/]: clean/{dataset} has not been cleaned for {days} (raw points newer "
            "than it); "
            f"reading the clean zone as it is. Run `sparkhu pipeline run --dataset {dataset} --start "
            f"{stale[0]} --end {stale[-1]}` first, or pass --catch-up",
            soft_wrap=True,
        )
        return
    with console.status(f"catching up: the daily pipeline over {days} ..."):
        summary = pipelines.daily(runtime, dataset).run(stale[0], stale[-1])
    console.print(
        f"caught up {days}: {summary.status}, {len(summary.runs)} task-day(s) in {summary.seconds:.1f} s"
    )
    if summary.status != "success":
        from sparkhu.errors import PipelineError

        raise PipelineError(
            f"the pipeline failed catching up {days}: see `sparkhu pipeline reports --dataset {dataset}`"
        )


CatchUpOption = Annotated[
    bool,
    typer.Option(
        "--catch-up",
        help="First run the daily pipeline for raw days the clean zone does not have yet (else: a warning).",
    ),
]


def _fmt(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def train(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Train the series whose id starts with this.")] = "",
    dataset: DatasetOption = None,
    start: Annotated[str | None, typer.Option(help="History from (ISO-8601, UTC if naive).")] = None,
    end: Annotated[str | None, typer.Option(help="History until, exclusive.")] = None,
    horizon: Annotated[int | None, typer.Option(help="Steps to forecast.", min=1)] = None,
    models: Annotated[
        str, typer.Option("--models", help="Comma-separated portfolio, e.g. seasonal_naive,ses.")
    ] = "",
    windows: Annotated[int, typer.Option(help="Back-test windows.", min=1)] = 3,
    season_length: Annotated[int | None, typer.Option(help="Season in periods.", min=1)] = None,
    period_s: Annotated[float, typer.Option(help="Resampling period in seconds.", min=0.001)] = 60.0,
    global_model: Annotated[
        str | None,
        typer.Option(
            "--global", help="Train ONE model over all the series instead: nlinear, dlinear or lstm."
        ),
    ] = None,
    feature_view: Annotated[
        str | None,
        typer.Option(
            "--feature-view", help="Train on this feature view's inputs (series, zone, window); recorded."
        ),
    ] = None,
    catch_up: CatchUpOption = False,
) -> None:
    """Back-test the portfolio per series, register each champion in MLflow, store its forecasts.

    Exits 1 when a series failed (the others are registered all the same).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    from sparkhu.app import training
    from sparkhu.errors import InputError
    from sparkhu.forecast.train import DEFAULT_PORTFOLIO, TrainConfig
    from sparkhu.timeaxis import parse_time

    settings = state(ctx).settings
    portfolio = tuple(m.strip() for m in models.split(",") if m.strip()) or DEFAULT_PORTFOLIO
    config = TrainConfig(
        horizon=horizon or settings.forecast.horizon,
        season_length=season_length or settings.forecast.season_length,
        period_s=period_s,
        portfolio=portfolio,
        windows=windows,
    )
    since, until = parse_time(start, "--start"), parse_time(end, "--end")
    if since is not None and until is not None and until <= since:
        raise InputError(f"{end} is not after --start {start}", field="--end")
    with open_runtime(ctx) as runtime:
        # a feature view names its own dataset
        dataset = runtime.resolve_dataset(dataset) if feature_view is None else (dataset or "")
        if feature_view is None:
            catch_up_or_warn(runtime, dataset, catch_up=catch_up)
        if global_model is not None:
            with console.status(f"training one {global_model} over {dataset} ..."):
                summary = training.train_global(runtime, dataset, global_model, config, prefix=prefix)
            _show(_champion_table(summary))
            console.print(
                f"one global {global_model} over {len(summary.results)} series in {summary.seconds:.1f} s"
            )
            return
        progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()
        )
        with progress:
            task = progress.add_task("back-testing", total=None)
            summary = training.train(
                runtime,
                dataset,
                config,
                prefix=prefix,
                start=since,
                end=until,
                feature_view=feature_view,
                progress=lambda done, total: progress.update(
                    task, description="registering", completed=done, total=total
                ),
            )
    _show(_champion_table(summary))
    console.print(
        f"{len(summary.results)} series from {summary.zone}/{summary.dataset} in {summary.seconds:.1f} s; "
        f"{len(summary.failed)} failed"
    )
    if summary.failed:
        # a scheduler retries on the exit status; the run record and the registry say what happened
        console.print(
            "run records: `sparkhu runs --kind train`; models: `sparkhu models` "
            f"({settings.mlflow.tracking_uri})",
            soft_wrap=True,
        )
        raise typer.Exit(1)


def _champion_table(summary: Any) -> Table:
    table = Table("series", "champion", "MASE", "runner-up", "MASE", "version", "note", box=None)
    for r in summary.results:
        table.add_row(
            r.series_id,
            r.champion or "-",
            _fmt(r.score),
            r.runner_up or "",
            _fmt(r.runner_up_score),
            f"v{r.version}" if r.version else "",
            r.reason or "",
        )
    return table


def predict(
    ctx: typer.Context,
    series: Annotated[str, typer.Argument(help="Series id source/measurement/field.")],
    horizon: Annotated[int | None, typer.Option(help="Steps to forecast.", min=1)] = None,
    alias: Annotated[str, typer.Option(help="Registry alias to load.")] = "champion",
    catch_up: CatchUpOption = False,
) -> None:
    """Forecast a series with its registered champion from its last point; store and print."""
    from sparkhu.app import training
    from sparkhu.config import dataset_name
    from sparkhu.series import SeriesId

    with open_runtime(ctx) as runtime:
        sid = SeriesId.parse(series)
        catch_up_or_warn(runtime, dataset_name(sid.source, sid.measurement), catch_up=catch_up)
        from sparkhu.errors import NotFoundError

        try:
            versions = runtime.registry.versions(series)
        except NotFoundError:
            versions = []
        if not any(alias in v.aliases for v in versions):
            raise NotFoundError(
                f"{series}: no model is registered as {alias!r}; train one with `sparkhu train {series}` "
                "(`sparkhu models` lists the registered models, `sparkhu series` the known series)"
            )
        table = training.predict(runtime, series, horizon=horizon, alias=alias)
    out = Table("target (UTC)", "value", "lower", "upper", box=None, title=f"{series} · {table['model'][0]}")
    for row in table.select(["target_ts", "value", "lower", "upper"]).to_pylist():
        out.add_row(
            row["target_ts"].strftime("%Y-%m-%d %H:%M"),
            f"{row['value']:.2f}",
            _fmt(row["lower"]),
            _fmt(row["upper"]),
        )
    _show(out)


models_app = typer.Typer(invoke_without_command=True)


@models_app.callback()
def models(
    ctx: typer.Context,
    series: Annotated[str | None, typer.Option(help="Only this series' model.")] = None,
) -> None:
    """The registry: every model version with its aliases and back-test metrics (browsable, with back-test
    plots and forecasts, on the dashboard's models page: `sparkhu serve`, then /#/models); `history`,
    `promote` and `rollback` below."""
    if ctx.invoked_subcommand is not None:
        return
    table = Table("name", "version", "aliases", "model", "MASE", "created (UTC)", box=None)
    settings = state(ctx).settings
    with open_runtime(ctx) as runtime:
        versions = runtime.registry.versions(series)
    for v in versions:
        table.add_row(
            v.name,
            str(v.version),
            ",".join(v.aliases),
            v.model,
            _fmt(v.metrics.get("mase")),
            v.created_at.strftime("%Y-%m-%d %H:%M") if v.created_at else "",
        )
    _show(table)
    gateway = settings.gateway
    console.print(
        f"{len(versions)} version(s) in {settings.mlflow.tracking_uri}; browse them on the dashboard's "
        f"models page: `sparkhu serve`, then http://{gateway.host}:{gateway.port}{MODELS_PAGE}",
        soft_wrap=True,
    )


def train_demo(runtime: Runtime, series: list[str], *, stop: threading.Event | None = None) -> None:
    """``sparkhu demo``'s training step: champions for the demo series registered, their table printed."""
    from sparkhu.app.demo import train_champions

    console.print("back-testing and registering champions ...")
    summary = train_champions(runtime, series, stop=stop)
    if summary is None or (stop is not None and stop.is_set()):
        return
    _show(_champion_table(summary))
    console.print(f"champions of {len(summary.results)} series registered in {summary.seconds:.1f} s")
