"""Bringing points in by command: ``sparkhu ingest`` (files → lake, or → bus) and ``sparkhu replay``.

Both open the source an entry describes (the same settings models as ``[[sources]]``), so a
command-line ingest and a configured source read files identically.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sparkhu.app.metadata import job_lineage, lake_dataset, source_dataset
from sparkhu.app.runtime import Runtime
from sparkhu.connectors.base import SourceSpec
from sparkhu.connectors.runner import PumpStats, ingest_to_lake, pump
from sparkhu.storage.catalog.engine import mask
from sparkhu.storage.writes import writing_run

Progress = Callable[[int], None]


def ingest(
    runtime: Runtime, spec: SourceSpec, *, via_bus: bool = False, progress: Progress | None = None
) -> PumpStats:
    """Read ``spec``'s source to its end into the lake's ``raw`` zone — or, ``via_bus``, onto its topic
    (the lake sink of a running platform lands it). Resumable: the connector's watermark is kept."""
    if via_bus:
        return publish(runtime, spec, progress=progress)
    record_source(runtime, spec)
    source = source_dataset(spec.kind, spec.name)
    raw = lake_dataset(runtime, f"raw/{spec.dataset}")
    with job_lineage(runtime, f"ingest:{spec.name}", inputs=[source], outputs=[raw]) as run:
        with writing_run(f"ingest:{spec.name}"):
            stats = ingest_to_lake(
                spec.open(),
                runtime.lake,
                runtime.catalog,
                zone="raw",
                dataset=spec.dataset,
                progress=progress,
            )
        run.detail.update(points=stats.points, quarantined=stats.quarantined)
        return stats


def record_source(runtime: Runtime, spec: SourceSpec) -> None:
    """Record a source (from ``[[sources]]`` or the command line) with its settings in the catalog; its
    watermarks are kept under the same name."""
    runtime.catalog.upsert_source(spec.name, spec.kind, spec.model_dump(mode="json"))


def publish(
    runtime: Runtime,
    spec: SourceSpec,
    *,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> PumpStats:
    """Publish ``spec``'s source onto its topic until it ends or ``stop`` is set (``sparkhu replay``)."""
    topic = runtime.topic(spec.source, spec.measurement)
    runtime.bus.create_topic(topic)
    record_source(runtime, spec)
    outputs = [(mask(runtime.settings.bus.uri), topic)]
    with job_lineage(
        runtime, f"source:{spec.name}", inputs=[source_dataset(spec.kind, spec.name)], outputs=outputs
    ) as run:
        stats = pump(
            spec.open(),
            runtime.bus,
            topic,
            runtime.catalog,
            lake=runtime.lake,
            quarantine_dataset=spec.dataset,
            stop=stop,
            progress=progress,
        )
        run.detail.update(points=stats.points, quarantined=stats.quarantined)
        return stats


def replay(
    runtime: Runtime,
    spec: SourceSpec,
    *,
    to_lake: bool = True,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> tuple[PumpStats, int]:
    """``sparkhu replay``: publish ``spec``'s source onto its topic and, ``to_lake``, land the topic in
    the lake's raw zone while it plays (the lake sink of ``sparkhu up``, in its consumer group, so
    a running platform and this command never land a point twice). Returns the publishing stats and
    the points landed."""
    from sparkhu.connectors.lake_sink import LakeSinkSettings

    if not to_lake:
        return publish(runtime, spec, stop=stop, progress=progress), 0
    topic = runtime.topic(spec.source, spec.measurement)
    runtime.bus.create_topic(topic)
    sink = LakeSinkSettings(name="lake").open(runtime, topic, spec.dataset)
    done = threading.Event()
    result: dict[str, PumpStats] = {}
    failure: list[BaseException] = []

    def play() -> None:
        try:
            result["stats"] = publish(runtime, spec, stop=stop, progress=progress)
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)
        finally:
            done.set()

    player = threading.Thread(target=play, name=f"replay {spec.name}", daemon=True)
    player.start()
    try:
        while not done.is_set():
            sink.run_once(timeout=0.5)
        player.join()
        if failure:
            raise failure[0]
        stats = result["stats"]
        idle = 0
        while sink.points_written < stats.points and idle < 20:  # drain what is still on the bus
            idle = 0 if sink.run_once(timeout=0.5) else idle + 1
        return stats, sink.points_written
    finally:
        sink.close()
