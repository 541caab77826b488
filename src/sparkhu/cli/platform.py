"""Commands that run the platform: demo, up, serve, config."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from sparkhu.app.assembly import build_platform
from sparkhu.app.platform import Platform, StopSignals
from sparkhu.app.runtime import Runtime
from sparkhu.cli import models
from sparkhu.cli.common import console, state
from sparkhu.config import Settings
from sparkhu.connectors import configured_sources
from sparkhu.connectors.base import SourceSpec
from sparkhu.errors import ConfigError
from sparkhu.gateway.serve import add_gateway


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
    """Generate household power data, ingest, clean, train champions, then run the platform on its replay."""
    from sparkhu.app.demo import demo_settings, prepare, reset_home

    base = state(ctx).settings
    updates: dict[str, Any] = {}
    if speed is not None:
        updates["speed"] = speed
    if days is not None:
        updates["days"] = days
    settings = demo_settings(base.model_copy(update={"demo": base.demo.model_copy(update=updates)}))
    reset_home(settings)
    console.print(f"[bold]sparkhu demo[/] in {settings.home}")
    with StopSignals() as signals, Runtime(settings) as runtime:
        with console.status("generating and ingesting history, running the daily cleaning step ..."):
            started = time.perf_counter()
            plan = prepare(runtime, settings.demo)
        console.print(
            f"history: {plan.history_points:,} points of {len(plan.series)} series ingested and cleaned in "
            f"{time.perf_counter() - started:.1f} s ({plan.quarantined:,} record(s) quarantined); "
            f"live: {plan.live_points:,} points to replay at ×{settings.demo.speed:g}"
        )
        models.train_demo(runtime, plan.series)
        _run(_platform(runtime, [plan.replay], port=port), duration, signals, settings.stop_timeout_s)


def up(
    ctx: typer.Context,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Run the platform of sparkhu.toml: sources, sinks, online learners serving champions, DAG, gateway."""
    settings = state(ctx).settings
    sources = configured_sources(settings)
    if not sources:
        raise ConfigError(
            "no [[sources]] in the settings: add one to sparkhu.toml (see the README) or run `sparkhu demo`"
        )
    with StopSignals() as signals, Runtime(settings) as runtime:
        _run(_platform(runtime, sources), duration, signals, settings.stop_timeout_s)


def serve(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(min=0, max=65535)] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Serve only the gateway (GraphQL, REST, metrics, dashboard) over the home's stores."""
    settings = state(ctx).settings
    with StopSignals() as signals, Runtime(settings) as runtime:
        _run(_platform(runtime, [], port=port, pipeline=False), duration, signals, settings.stop_timeout_s)


def show_config(ctx: typer.Context) -> None:
    """Print the effective settings (after sparkhu.toml and SPARKHU_* variables)."""
    settings: Settings = state(ctx).settings
    data = json.loads(settings.model_dump_json())
    if data["gateway"].get("token"):
        data["gateway"]["token"] = "***"
    console.print_json(data=data)


def _platform(
    runtime: Runtime, sources: Sequence[SourceSpec], *, port: int | None = None, pipeline: bool = True
) -> Platform:
    """The one platform of up, demo and serve: the assembly's services behind the gateway."""
    return build_platform(
        runtime, sources, pipeline=pipeline, serve=lambda p, r: add_gateway(p, r, port=port)
    )


def _run(platform: Platform, duration: float | None, signals: StopSignals, stop_timeout_s: float) -> None:
    """Run until ``duration``, Ctrl-C, SIGTERM or a failing service; then stop within ``stop_timeout_s``.

    A requested stop (all but a failure) exits with status 0.
    """
    signals.attach(platform)
    platform.start()
    try:
        platform.wait_ready()
        if not platform.stop_event.is_set() and platform.url:
            console.print(f"dashboard: [link={platform.url}]{platform.url}[/link]")
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
        if signals.received:
            console.print(f"{signals.received}: stopping ...")
        late = platform.stop(stop_timeout_s)
        if late:
            console.print(f"stopped waiting after {stop_timeout_s:g} s for: {', '.join(late)}")
    platform.raise_failure()


def _status(platform: Platform) -> Table:
    table = Table("service", "figures", box=None, title="live", title_justify="left")
    for name, figures in platform.figures().items():
        table.add_row(
            name, ", ".join(f"{key.replace('_', ' ')} {value:,.0f}" for key, value in figures.items())
        )
    return table
