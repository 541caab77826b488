"""Commands that run the platform: demo, up, serve, config."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from sparkhu.cli import models
from sparkhu.cli.common import console, open_runtime, state

if TYPE_CHECKING:
    from sparkhu.app.platform import Platform, StopSignals
    from sparkhu.app.runtime import Runtime
    from sparkhu.connectors.base import SourceSpec

STATUS_EVERY_S = 10.0
"""Seconds between the plain status lines of up/demo/serve when the output is not a terminal."""


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
    from sparkhu.app.platform import StopSignals
    from sparkhu.app.runtime import Runtime

    base = state(ctx).settings
    updates: dict[str, Any] = {}
    if speed is not None:
        updates["speed"] = speed
    if days is not None:
        updates["days"] = days
    settings = demo_settings(base.model_copy(update={"demo": base.demo.model_copy(update=updates)}))
    reset_home(settings)
    console.print(f"[bold]sparkhu demo[/] in {settings.home}")
    started = time.perf_counter()
    with StopSignals() as signals, Runtime(settings) as runtime:
        with _step("generating and ingesting the history, running the daily cleaning DAG over it ..."):
            plan = prepare(runtime, settings.demo)
        console.print(
            f"history: {plan.history_points:,} points of {len(plan.series)} series ingested and cleaned in "
            f"{time.perf_counter() - started:.1f} s ({plan.quarantined:,} record(s) quarantined); "
            f"live: the last {settings.demo.replay_days:g} day(s), {plan.live_points:,} points, replayed at "
            f"×{settings.demo.speed:g} until caught up with the clock, then in real time"
        )
        platform = _platform(runtime, [plan.replay], port=port)
        platform.add("demo: champions", lambda stop: _train_champions(runtime, plan, platform, stop))
        _run(platform, duration, signals, settings.stop_timeout_s, started=started)


def _step(what: str) -> Any:
    """A spinner on a terminal; one plain line otherwise (a log shows what the demo is doing)."""
    if console.is_terminal:
        return console.status(what)
    console.print(what, markup=False)
    return contextlib.nullcontext()


def _train_champions(runtime: Runtime, plan: Any, platform: Platform, stop: threading.Event) -> None:
    """The demo's training, once the dashboard serves (it shows the online learner's forecasts meanwhile):
    back-test and register champions, which the online predictor then swaps in. Stops between rounds."""
    platform.wait_ready(timeout=600.0)
    if not stop.is_set():
        models.train_demo(runtime, plan.series, stop=stop)


def up(
    ctx: typer.Context,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Run the platform of sparkhu.toml: sources, sinks, online learners serving champions, DAG, gateway."""
    from sparkhu.app.platform import StopSignals
    from sparkhu.connectors import configured_sources
    from sparkhu.errors import ConfigError

    settings = state(ctx).settings
    sources = configured_sources(settings)
    if not sources:
        raise ConfigError(
            "no [[sources]] in the settings: add one to sparkhu.toml (see the README) or run `sparkhu demo`"
        )
    with StopSignals() as signals, open_runtime(ctx) as runtime:
        _run(_platform(runtime, sources), duration, signals, settings.stop_timeout_s)


def serve(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(min=0, max=65535)] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Serve only the gateway (GraphQL, REST, metrics, dashboard) over the home's stores."""
    from sparkhu.app.platform import StopSignals

    settings = state(ctx).settings
    with StopSignals() as signals, open_runtime(ctx) as runtime:
        _run(_platform(runtime, [], port=port, pipeline=False), duration, signals, settings.stop_timeout_s)


def show_config(ctx: typer.Context) -> None:
    """Print the effective settings (after sparkhu.toml and SPARKHU_* variables)."""
    settings = state(ctx).settings
    data = json.loads(settings.model_dump_json())
    if data["gateway"].get("token"):
        data["gateway"]["token"] = "***"
    console.print_json(data=data)


def _platform(
    runtime: Runtime, sources: Sequence[SourceSpec], *, port: int | None = None, pipeline: bool = True
) -> Platform:
    """The one platform of up, demo and serve: the assembly's services behind the gateway."""
    from sparkhu.app.assembly import build_platform
    from sparkhu.gateway.serve import add_gateway

    return build_platform(
        runtime, sources, pipeline=pipeline, serve=lambda p, r: add_gateway(p, r, port=port)
    )


def _run(
    platform: Platform,
    duration: float | None,
    signals: StopSignals,
    stop_timeout_s: float,
    *,
    started: float | None = None,
) -> None:
    """Run until ``duration``, Ctrl-C, SIGTERM or a failing service; then stop within ``stop_timeout_s``.

    A requested stop (all but a failure) exits with status 0.
    """
    signals.attach(platform)
    platform.start()
    try:
        platform.wait_ready()
        if not platform.stop_event.is_set() and platform.url:
            after = (
                "" if started is None else f" (ready {time.perf_counter() - started:.0f} s after the start)"
            )
            console.print(f"dashboard: [link={platform.url}]{platform.url}[/link]{after}")
        deadline = None if duration is None else time.monotonic() + duration
        if console.is_terminal:
            from rich.live import Live

            with Live(_status(platform), console=console, refresh_per_second=2, transient=False) as live:
                while not platform.stop_event.is_set():
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    platform.stop_event.wait(0.5)
                    live.update(_status(platform))
        else:  # a log or a pipe: a plain status line every STATUS_EVERY_S seconds
            started = time.monotonic()
            while not platform.stop_event.is_set():
                left = (
                    STATUS_EVERY_S if deadline is None else min(STATUS_EVERY_S, deadline - time.monotonic())
                )
                if left <= 0 or platform.stop_event.wait(left):
                    break
                console.print(
                    _status_line(platform, time.monotonic() - started), soft_wrap=True, markup=False
                )
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


def _status_line(platform: Platform, elapsed_s: float) -> str:
    figures = "; ".join(
        f"{name}: " + ", ".join(f"{key.replace('_', ' ')} {value:,.0f}" for key, value in values.items())
        for name, values in platform.figures().items()
        if values
    )
    return f"live {elapsed_s:.0f} s: {figures}"
