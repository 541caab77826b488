"""Commands that run the platform: demo, up, serve, config."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from sparkhu.cli import models
from sparkhu.cli.common import console, state
from sparkhu.config import Settings
from sparkhu.context import Context
from sparkhu.errors import ConfigError, SparkhuError
from sparkhu.platform import Platform


def demo(
    ctx: typer.Context,
    speed: Annotated[
        float | None, typer.Option(help="Replay speed: data seconds per wall second.", min=0.001)
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (headless runs).")
    ] = None,
    days: Annotated[int | None, typer.Option(help="Days of history to generate.", min=1)] = None,
    port: Annotated[
        int | None, typer.Option(help="Dashboard port (0: any free port).", min=0, max=65535)
    ] = None,
) -> None:
    """Generate household power data, ingest, clean, replay it live, forecast and serve the dashboard."""
    from sparkhu.demo.run import demo_settings, prepare, reset_home

    base = state(ctx).settings
    updates: dict[str, Any] = {}
    if speed is not None:
        updates["speed"] = speed
    if days is not None:
        updates["days"] = days
    settings = demo_settings(base.model_copy(update={"demo": base.demo.model_copy(update=updates)}))
    reset_home(settings)
    console.print(f"[bold]sparkhu demo[/] in {settings.home}")
    with Context.open(settings) as context:
        with console.status("generating and ingesting history, running the daily cleaning step ..."):
            started = time.perf_counter()
            plan = prepare(context, settings.demo)
        console.print(
            f"history: {plan.history_points:,} points of {len(plan.series)} series ingested and cleaned in "
            f"{time.perf_counter() - started:.1f} s ({plan.quarantined:,} record(s) quarantined); "
            f"live: {plan.live_points:,} points to replay at ×{settings.demo.speed:g}"
        )
        registry = models.train_demo(context, plan.series)
        platform = Platform(context)
        platform.add_source(plan.replay, repeat_s=None)
        platform.add_topic_consumers(plan.replay.source, plan.replay.measurement)
        platform.add_champion_server(registry, poll_s=10.0)
        platform.add_pipeline_scheduler([plan.replay.dataset])
        url = platform.add_gateway(port=port)
        _run(platform, duration, f"dashboard: [link={url}]{url}[/link]")


def up(
    ctx: typer.Context,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Run the platform from sparkhu.toml: its sources, sinks, online predictors, pipeline and gateway."""
    settings = state(ctx).settings
    if not settings.sources:
        raise ConfigError(
            "no [[sources]] in the settings: add one to sparkhu.toml (see the README) or run `sparkhu demo`"
        )
    with Context.open(settings) as context:
        platform = Platform(context)
        topics = {(spec.source, spec.measurement) for spec in settings.sources}
        for spec in settings.sources:
            platform.add_source(spec)
        for source, measurement in sorted(topics):
            platform.add_topic_consumers(source, measurement)
        platform.add_pipeline_scheduler(sorted({spec.dataset for spec in settings.sources}))
        url = platform.add_gateway()
        _run(platform, duration, f"dashboard: [link={url}]{url}[/link]")


def serve(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(min=0, max=65535)] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Serve only the gateway (GraphQL, REST, metrics, dashboard) over the home's stores."""
    with Context.open(state(ctx).settings) as context:
        platform = Platform(context)
        url = platform.add_gateway(port=port)
        _run(platform, duration, f"gateway: [link={url}]{url}[/link]")


def show_config(ctx: typer.Context) -> None:
    """Print the effective settings (after sparkhu.toml and SPARKHU_* variables)."""
    settings: Settings = state(ctx).settings
    data = json.loads(settings.model_dump_json())
    if data["gateway"].get("token"):
        data["gateway"]["token"] = "***"
    console.print_json(data=data)


def _run(platform: Platform, duration: float | None, headline: str) -> None:
    platform.start()
    try:
        platform.wait_ready()
        if not platform.stop_event.is_set():
            console.print(headline)
        deadline = None if duration is None else time.monotonic() + duration
        with Live(_status(platform), console=console, refresh_per_second=2, transient=False) as live:
            while not platform.stop_event.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                platform.stop_event.wait(0.5)
                live.update(_status(platform))
    except KeyboardInterrupt:
        console.print("stopping ...")
    finally:
        platform.stop()
    failures = platform.failures()
    if failures:
        name, error = failures[0]
        if isinstance(error, SparkhuError):
            raise error
        raise SparkhuError(f"service {name!r} failed: {type(error).__name__}: {error}") from error


def _status(platform: Platform) -> Table:
    table = Table("service", "figures", box=None, title="live", title_justify="left")
    for name, figures in platform.figures.items():
        table.add_row(
            name, ", ".join(f"{key.replace('_', ' ')} {value:,.0f}" for key, value in figures().items())
        )
    return table
