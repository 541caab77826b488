"""The one wiring of the running platform: which services ``up``, ``demo`` and ``serve`` run.

:func:`build_platform` adds, from a :class:`~sparkhu.app.runtime.Runtime` and a list of sources:

* one connector per source, publishing to its topic (watermarked in the catalog); a source with
  ``repeat_s`` is read again that long after it ends (files: new files are picked up);
* per topic: the lake sink (bus → ``raw`` zone), the extra ``[[sinks]]`` that take it, the online
  predictor (bus → prediction store, blended; its forecasts scored and drift watched as targets
  arrive, :mod:`sparkhu.online.scoring`) and the champion server, which keeps the
  predictor serving the registry's champions (hot-swapping new ones);
* the controller, when training policies exist (:mod:`sparkhu.app.control`): retrain, shadow,
  promote, watch and roll back the models of the predictors' series;
* the daily pipeline scheduler (the cleaning DAG of each source's dataset at ``[pipeline] schedule``,
  catching up missed days) and the retention scheduler (a pass at ``[retention] schedule``);
* the connectors declared at run time (:mod:`sparkhu.app.connectors`: REST API, ``sparkhu connectors``);
* the gateway (GraphQL, REST, metrics, dashboard) under uvicorn, which the caller hands in as
  ``serve`` (the gateway is a layer above this one).

``sparkhu up`` builds it from ``[[sources]]``; ``sparkhu demo`` from the demo's replay source, after
generating data and training champions; ``sparkhu serve`` with the gateway only. Nothing else
assembles services, so the three cannot disagree.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sparkhu.app.platform import Platform
from sparkhu.app.retention import add_retention_scheduler
from sparkhu.app.runtime import Runtime
from sparkhu.config import dataset_name
from sparkhu.connectors import configured_sinks
from sparkhu.connectors.base import SinkSpec, SourceSpec
from sparkhu.connectors.lake_sink import LakeSinkSettings
from sparkhu.storage.writes import writing_run

if TYPE_CHECKING:
    from sparkhu.online.learner import OnlinePredictor

log = logging.getLogger(__name__)


def build_platform(
    runtime: Runtime,
    sources: Sequence[SourceSpec],
    *,
    pipeline: bool = True,
    serve: Callable[[Platform, Runtime], object] | None = None,
) -> Platform:
    """The platform of ``sources`` over ``runtime``'s backends; see the module docstring.

    ``pipeline=False`` leaves the scheduler out. ``serve`` adds the front door last — the gateway
    (:func:`sparkhu.gateway.serve.add_gateway`), which sits above this layer and so is handed in.
    """
    platform = Platform()
    topics: dict[tuple[str, str], None] = {}
    for spec in sources:
        add_source(platform, runtime, spec)
        topics[(spec.source, spec.measurement)] = None
    sinks = [LakeSinkSettings(name="lake"), *configured_sinks(runtime.settings)]
    predictors = {
        dataset_name(source, measurement): add_topic_consumers(platform, runtime, source, measurement, sinks)
        for source, measurement in sorted(topics)
    }
    if predictors:
        from sparkhu.app.control import add_controller

        add_controller(platform, runtime, predictors)
    if pipeline and topics:
        add_pipeline_scheduler(platform, runtime, sorted({spec.dataset for spec in sources}))
        add_retention_scheduler(platform, runtime)
    add_declared_connectors(platform, runtime)
    if serve is not None:
        serve(platform, runtime)
    return platform


def add_source(platform: Platform, runtime: Runtime, spec: SourceSpec) -> None:
    """Publish a source's points to its topic; with ``repeat_s``, read it again that long after it ends."""
    from sparkhu.app.ingest import publish

    published = {"points": 0.0}

    def run(stop: threading.Event) -> None:
        while not stop.is_set():
            before = published["points"]
            stats = publish(
                runtime,
                spec,
                stop=stop,
                progress=lambda n: published.update(points=before + n),  # noqa: B023 - called within this round
            )
            published["points"] = before + stats.points
            if spec.repeat_s is None:
                return
            stop.wait(spec.repeat_s)

    platform.add(f"source {spec.name}", run, figures=lambda: dict(published))


def add_declared_connectors(platform: Platform, runtime: Runtime) -> None:
    """Run the connectors declared at run time (REST API, ``sparkhu connectors``), as the catalog says."""
    from sparkhu.app.connectors import ConnectorManager

    manager = ConnectorManager(runtime)
    platform.add("declared connectors", manager.run, figures=manager.figures)


def add_topic_consumers(
    platform: Platform, runtime: Runtime, source: str, measurement: str, sinks: Sequence[SinkSpec]
) -> OnlinePredictor:
    """The ``sinks`` that take this topic, the online predictor and its champion server of one topic;
    returns the predictor (the controller shadows challengers on it)."""
    from sparkhu.online.champions import ChampionServer
    from sparkhu.online.learner import OnlinePredictor
    from sparkhu.online.scorer import OnlineScorer

    settings = runtime.settings
    topic = runtime.topic(source, measurement)
    dataset = dataset_name(source, measurement)
    runtime.bus.create_topic(topic)
    for sink_spec in sinks:
        if sink_spec.topics is not None and dataset not in sink_spec.topics:
            continue
        sink = sink_spec.open(runtime, topic, dataset)
        run = as_writer(f"sink:{sink_spec.name}:{topic}", sink.run)  # who wrote the lake's partitions
        platform.add(f"{sink_spec.kind} sink {sink_spec.name} {topic}", run, figures=sink.figures)
    forecast = settings.forecast
    scorer = OnlineScorer(
        runtime.catalog, f"online/{topic}", window=forecast.window, season_length=forecast.season_length
    )
    predictor = OnlinePredictor(
        runtime.bus,
        topic,
        runtime.predictions,
        group="online",
        model=forecast.model,
        window=forecast.window,
        horizon=forecast.horizon,
        alpha=forecast.alpha,
        lake=runtime.lake,
        zone="raw",
        dataset=dataset,
        scorer=scorer,
    )
    shown = ("points", "forecasts", "series", "swaps", "latency_p50_ms", "latency_p99_ms")
    platform.add(
        f"online {topic}",
        predictor.run,
        figures=lambda: (
            {k: v for k, v in asdict(predictor.stats()).items() if k in shown}
            | {"scored": scorer.stats().scored, "drift_events": scorer.stats().drift_events}
        ),
    )
    server = ChampionServer(runtime.registry, predictor, poll_s=forecast.champion_poll_s)
    platform.add(
        f"champions {topic}",
        server.run,
        figures=lambda: {"served": len(server.serving), "swaps": server.swaps},
    )
    return predictor


def as_writer(name: str, run: Callable[[threading.Event], None]) -> Callable[[threading.Event], None]:
    """``run`` with its lake writes attributed to the writer ``name`` (see ``storage.writes.writing_run``)."""

    def named(stop: threading.Event) -> None:
        with writing_run(name):
            run(stop)

    return named


def add_pipeline_scheduler(
    platform: Platform, runtime: Runtime, datasets: list[str], *, check_every_s: float = 60.0
) -> None:
    """Run the daily DAG of each dataset: at start, catch up every finished day (UTC) that has not
    run; then at each ``[pipeline] schedule`` firing, the days before it that have not run. Task
    failures are recorded in the catalog and do not stop the platform; the platform's stop ends a
    catch-up between stages of the DAG (what did not run stays missing for the next start).
    ``check_every_s`` bounds how long the loop sleeps between looks at the clock.

    When it fires is APScheduler's cron trigger; the loop around it is ours, not APScheduler's
    ``BackgroundScheduler``, because a platform service must stop on the platform's one stop event
    and report its failure to it, and what to run is decided by the catalog's run records (catch-up
    of missed days), not by the scheduler's own job store and misfire rules."""
    from sparkhu.app.pipelines import daily

    trigger = runtime.settings.pipeline.trigger()
    counts = {"task_days": 0, "failed": 0}

    def catch_up(now: datetime, stop: threading.Event) -> None:
        yesterday = now.date() - timedelta(days=1)
        for dataset in datasets:
            if stop.is_set():
                return
            runner = daily(runtime, dataset)
            summary = runner.run_missing(yesterday, stop=stop)  # a stop ends it between stages
            counts["task_days"] += len(summary.runs)
            counts["failed"] += sum(1 for r in summary.runs if r.status != "success")
            if summary.runs:
                log.info("pipeline %s: %d task-day(s), %s", dataset, len(summary.runs), summary.status)

    def run(stop: threading.Event) -> None:
        catch_up(datetime.now(UTC), stop)
        while not stop.is_set():
            now = datetime.now(UTC)
            due = trigger.get_next_fire_time(None, now)
            if stop.wait(min((due - now).total_seconds(), check_every_s)):
                break
            if datetime.now(UTC) >= due:
                catch_up(datetime.now(UTC), stop)

    platform.add("pipeline scheduler", run, figures=lambda: dict(counts))
