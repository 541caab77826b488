"""The platform: the long-lived services of one home, assembled from settings and run together.

``sparkhu up`` and ``sparkhu demo`` run, each in its own thread with one shared stop event:

* one connector per ``[[sources]]`` entry, publishing to the bus (watermarked in the catalog);
* per topic, the lake sink (bus → ``raw`` zone) and the online predictor (bus → prediction
  store, blended);
* the daily pipeline scheduler (the cleaning DAG at ``[pipeline] schedule``, catching up missed days);
* the gateway (GraphQL, REST, metrics, dashboard) under uvicorn.

A service that fails is reported and stops the platform (no silent half-running system).
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sparkhu.config import SourceSettings
from sparkhu.connectors.base import Source
from sparkhu.context import Context
from sparkhu.errors import ConfigError, InputError, SparkhuError

log = logging.getLogger(__name__)

_SHIFT_RE = re.compile(r"^([+-]?\d+(?:\.\d+)?)(s|min|h|d)$")
_SHIFT_UNIT_S = {"s": 1, "min": 60, "h": 3600, "d": 86400}


def parse_shift(text: str) -> str | timedelta:
    """``end_now``/``start_now`` stay words; ``+3196d``, ``-2h``, ``90min`` become a timedelta."""
    if text in ("end_now", "start_now"):
        return text
    match = _SHIFT_RE.match(text)
    if not match:
        raise InputError(f"{text!r}: expected end_now, start_now or an offset such as +3196d", field="shift")
    return timedelta(seconds=float(match.group(1)) * _SHIFT_UNIT_S[match.group(2)])


def build_source(spec: SourceSettings) -> Source:
    """The connector described by one ``[[sources]]`` entry."""
    from sparkhu.connectors.files import FileSource

    prefix = f"{spec.source}/{spec.measurement}/"
    files = FileSource(
        spec.name,
        spec.path,
        format=spec.format,
        layout=spec.layout,
        series_prefix=prefix,
        field_suffix=spec.field_suffix,
        ts_column=spec.ts_column,
        ts_unit=spec.ts_unit,
    )
    if spec.kind == "file":
        return files
    if spec.kind == "replay":
        from sparkhu.connectors.files import read_all
        from sparkhu.connectors.replay import ReplaySource

        return ReplaySource(
            spec.name, lambda: read_all(files), shift=parse_shift(spec.shift), speed=spec.speed
        )
    raise ConfigError(f"sources.{spec.name}.kind: unknown kind {spec.kind!r}; expected file or replay")


@dataclass
class _Service:
    name: str
    target: Callable[[threading.Event], Any]
    thread: threading.Thread | None = None
    error: BaseException | None = None


@dataclass
class Platform:
    """Services run in threads with one stop event; ``start``, then ``wait`` or ``stop``."""

    context: Context
    stop_event: threading.Event = field(default_factory=threading.Event)
    services: list[_Service] = field(default_factory=list)
    figures: dict[str, Callable[[], dict[str, float]]] = field(default_factory=dict)
    """Per service, a function returning its live figures (what the CLI shows)."""
    url: str | None = None
    predictors: dict[str, Any] = field(default_factory=dict)
    """Topic → its online predictor (the champion server hot-swaps models into them)."""
    _server: Any = None

    def add(self, name: str, target: Callable[[threading.Event], Any]) -> None:
        """Register a service: ``target(stop_event)`` runs until the event is set."""
        self.services.append(_Service(name, target))

    def add_source(self, spec: SourceSettings, *, repeat_s: float | None = 30.0) -> None:
        """Publish a source's points to its topic; file sources look for new files every ``repeat_s``."""
        from sparkhu.connectors.runner import pump

        ctx = self.context
        topic = ctx.topic(spec.source, spec.measurement)
        ctx.bus.create_topic(topic)
        source = build_source(spec)

        published = {"points": 0.0}
        self.figures[f"source {spec.name}"] = lambda: dict(published)

        def run(stop: threading.Event) -> None:
            while not stop.is_set():
                before = published["points"]
                stats = pump(
                    source,
                    ctx.bus,
                    topic,
                    ctx.catalog,
                    lake=ctx.lake,
                    quarantine_dataset=spec.dataset,
                    stop=stop,
                    progress=lambda n: published.update(points=before + n),  # noqa: B023 - called within this round
                )
                published["points"] = before + stats.points
                if spec.kind != "file" or repeat_s is None:
                    return
                stop.wait(repeat_s)

        self.add(f"source {spec.name}", run)

    def add_topic_consumers(self, source: str, measurement: str) -> None:
        """The lake sink and the online predictor of one topic."""
        from sparkhu.config import dataset_name
        from sparkhu.connectors.lake_sink import LakeSink
        from sparkhu.online.learner import OnlinePredictor

        ctx = self.context
        topic = ctx.topic(source, measurement)
        ctx.bus.create_topic(topic)
        forecast = ctx.settings.forecast
        sink = LakeSink(
            ctx.bus,
            ctx.lake,
            topic,
            group="lake-sink",
            zone="raw",
            dataset=dataset_name(source, measurement),
            catalog=ctx.catalog,
        )
        predictor = OnlinePredictor(
            ctx.bus,
            topic,
            ctx.predictions,
            group="online",
            model=forecast.model,
            window=forecast.window,
            horizon=forecast.horizon,
            alpha=forecast.alpha,
            lake=ctx.lake,
            zone="raw",
            dataset=dataset_name(source, measurement),
        )
        self.figures[f"lake sink {topic}"] = lambda: {
            "points": sink.points_written,
            "quarantined": sink.records_quarantined,
        }
        self.figures[f"online {topic}"] = lambda: {
            k: v
            for k, v in asdict(predictor.stats()).items()
            if k in ("points", "forecasts", "series", "latency_p50_ms", "latency_p99_ms")
        }
        self.add(f"lake sink {topic}", sink.run)
        self.add(f"online predictor {topic}", predictor.run)
        self.predictors[topic] = predictor

    def add_pipeline_scheduler(self, datasets: list[str], *, check_every_s: float = 60.0) -> None:
        """Run the daily DAG of each dataset: at start, catch up every finished day (UTC) that
        has not run; then each day at ``[pipeline] schedule`` (UTC), the day before and any
        missed ones. Task failures are recorded in the catalog and do not stop the platform.
        ``check_every_s`` bounds how long the loop sleeps between checks of the clock."""
        from sparkhu.engine import open_engine
        from sparkhu.pipeline.daily import daily_runner

        ctx = self.context
        settings = ctx.settings
        hour, minute = (int(part) for part in settings.pipeline.schedule.split(":"))
        engine = open_engine(settings.engine)
        runners = [
            daily_runner(ctx.lake, ctx.catalog, engine, ds, settings=settings.pipeline, home=settings.home)
            for ds in datasets
        ]
        counts = {"task_days": 0, "failed": 0}
        self.figures["pipeline"] = lambda: dict(counts)

        def catch_up(now: datetime) -> None:
            yesterday = now.date() - timedelta(days=1)
            for runner in runners:
                summary = runner.run_missing(yesterday)
                counts["task_days"] += len(summary.runs)
                counts["failed"] += sum(1 for r in summary.runs if r.status != "success")
                if summary.runs:
                    done = len(summary.runs)
                    log.info("pipeline %s: %d task-day(s), %s", runner.dataset, done, summary.status)

        def run(stop: threading.Event) -> None:
            try:
                catch_up(datetime.now(UTC))
                while not stop.is_set():
                    now = datetime.now(UTC)
                    due = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
                    if due <= now:
                        due += timedelta(days=1)
                    if stop.wait(min((due - now).total_seconds(), check_every_s)):
                        break
                    if datetime.now(UTC) >= due:
                        catch_up(datetime.now(UTC))
            finally:
                engine.close()

        self.add("pipeline scheduler", run)

    def add_champion_server(self, registry: Any, *, poll_s: float = 30.0) -> None:
        """Serve the registry's champions in every online predictor; new champions hot-swap in."""
        from sparkhu.forecast.serving import ChampionServer

        for topic, predictor in self.predictors.items():
            server = ChampionServer(registry, predictor, poll_s=poll_s)
            self.figures[f"champions {topic}"] = lambda s=server: {"served": len(s.serving), "swaps": s.swaps}
            self.add(f"champion server {topic}", server.run)

    def add_gateway(self, host: str | None = None, port: int | None = None) -> str:
        """Serve GraphQL, REST, metrics and the dashboard; returns the URL."""
        import uvicorn

        from sparkhu.gateway.app import GatewayServices, create_app

        ctx = self.context
        host = host or ctx.settings.gateway.host
        port = ctx.settings.gateway.port if port is None else port
        if port == 0:
            port = _free_port(host)
        services = GatewayServices(
            lake=ctx.lake,
            catalog=ctx.catalog,
            predictions=ctx.predictions,
            settings=ctx.settings.gateway,
            timezone=ctx.settings.timezone,
            actuals=("raw", "{source}_{measurement}"),
        )
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(services),
                host=host,
                port=port,
                log_level="warning",
                lifespan="on",
                ws="websockets-sansio",
            )
        )

        def run(stop: threading.Event) -> None:
            watcher = threading.Thread(
                target=lambda: (stop.wait(), setattr(server, "should_exit", True)), daemon=True
            )
            watcher.start()
            server.run()

        self.add("gateway", run)
        self._server = server
        self.url = f"http://{host}:{port}/"
        return self.url

    def start(self) -> None:
        """Start every registered service."""
        for service in self.services:
            service.thread = threading.Thread(
                target=self._guard, args=(service,), name=service.name, daemon=True
            )
            service.thread.start()

    def _guard(self, service: _Service) -> None:
        try:
            service.target(self.stop_event)
        except BaseException as exc:
            service.error = exc
            # Our own errors are reported as one line by whoever stops the platform.
            log.debug("service %s failed", service.name, exc_info=not isinstance(exc, SparkhuError))
            self.stop_event.set()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the gateway (if any) accepts connections, or the platform stopped."""
        server = self._server
        deadline = time.monotonic() + timeout
        while server is not None and not server.started and not self.stop_event.is_set():
            if time.monotonic() > deadline:
                raise ConfigError(f"the gateway did not start on {self.url} within {timeout:.0f} s")
            time.sleep(0.05)

    def failures(self) -> list[tuple[str, BaseException]]:
        """Services that ended with an error."""
        return [(s.name, s.error) for s in self.services if s.error is not None]

    def stop(self, timeout: float = 15.0) -> None:
        """Ask every service to stop and wait for them."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for service in self.services:
            if service.thread is not None:
                service.thread.join(max(0.0, deadline - time.monotonic()))


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
