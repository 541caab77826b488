"""The metadata room bound to a runtime: lineage with the home's topic names, OpenLineage events to
``[metadata] openlineage``, feature views for training.

>>> import tempfile
>>> from sparkhu.config import Settings
>>> from sparkhu.storage.catalog import SeriesInfo
>>> with tempfile.TemporaryDirectory() as home:
...     with Runtime(Settings.load(toml_path=None, env={}, overrides={"home": home})) as runtime:
...         runtime.catalog.upsert_series(SeriesInfo.of("home/power/P"))
...         graph = series_lineage(runtime, "home/power/P")
>>> graph.of_kind("dataset")[0].label
'raw/home_power'
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sparkhu.app.runtime import Runtime
from sparkhu.errors import SparkhuError
from sparkhu.metadata.lineage import LineageGraph, lineage
from sparkhu.metadata.openlineage import LineageEmitter, job_event, lineage_events
from sparkhu.storage.catalog.engine import mask

log = logging.getLogger(__name__)


def series_lineage(runtime: Runtime, series_id: str) -> LineageGraph:
    """The lineage of ``series_id`` in the runtime's catalog, with its bus's topic names."""
    return lineage(runtime.catalog, series_id, topic_prefix=runtime.settings.bus.topic_prefix)


def openlineage_events(runtime: Runtime, graphs: Sequence[LineageGraph]) -> list[dict[str, Any]]:
    """The OpenLineage events of ``graphs`` (one per run, however many graphs share it), with the
    home's lake root, bus and registry as dataset namespaces."""
    settings = runtime.settings
    seen: set[tuple[str, str]] = set()
    out = []
    for graph in graphs:
        for event in lineage_events(
            graph,
            namespace=settings.metadata.namespace,
            lake=settings.storage.lake,
            bus=mask(settings.bus.uri),
            registry=mask(settings.mlflow.tracking_uri),
        ):
            key = (event["job"]["name"], event["run"]["runId"])
            if key not in seen:
                seen.add(key)
                out.append(event)
    return out


def emitter(runtime: Runtime) -> LineageEmitter:
    """The emitter of ``[metadata] openlineage`` (sends nothing when it is empty)."""
    meta = runtime.settings.metadata
    return LineageEmitter(meta.openlineage, timeout_s=meta.openlineage_timeout_s)


def emit_lineage(runtime: Runtime, series_ids: Sequence[str]) -> int:
    """Send the OpenLineage events of the lineage of ``series_ids`` to ``[metadata] openlineage``;
    how many were sent (0 when it is not set)."""
    target = emitter(runtime)
    if not target.enabled or not series_ids:
        return 0
    graphs = [series_lineage(runtime, sid) for sid in series_ids]
    return target.emit(openlineage_events(runtime, graphs))


@dataclass
class JobRun:
    """One run of a job (an ingest, a pipeline task-day, a training) as OpenLineage sees it: its
    ``START`` and, at its end, ``COMPLETE`` or ``FAIL`` (``status`` ``failed``), with its datasets
    as (namespace, name) pairs (see :func:`lake_dataset`, :func:`model_dataset`)."""

    job: str
    run_id: str
    inputs: list[tuple[str, str]] = field(default_factory=list)
    outputs: list[tuple[str, str]] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    status: str = "success"
    detail: dict[str, Any] = field(default_factory=dict)

    def events(self, namespace: str) -> list[dict[str, Any]]:
        """Its ``START`` event and its end's (``COMPLETE`` or ``FAIL``), sharing one run id."""
        ended = self.finished_at or datetime.now(UTC)
        detail = {"status": self.status, **self.detail}
        ended_as = "FAIL" if self.status == "failed" else "COMPLETE"
        return [
            job_event(
                "START",
                job=self.job,
                run_id=self.run_id,
                namespace=namespace,
                event_time=self.started_at,
                inputs=self.inputs,
            ),
            job_event(
                ended_as,
                job=self.job,
                run_id=self.run_id,
                namespace=namespace,
                event_time=ended,
                inputs=self.inputs,
                outputs=self.outputs,
                detail={k: v for k, v in detail.items() if v is not None},
            ),
        ]


def lake_dataset(runtime: Runtime, name: str) -> tuple[str, str]:
    """The OpenLineage dataset of lake dataset ``zone/dataset`` (namespace: the lake's root)."""
    return runtime.settings.storage.lake, name


def source_dataset(kind: str, name: str) -> tuple[str, str]:
    """The OpenLineage dataset a source's connector reads (namespace: ``source:<kind>``)."""
    return f"source:{kind}", name


def model_dataset(runtime: Runtime, name: str, version: int | str) -> tuple[str, str]:
    """The OpenLineage dataset of a model version (namespace: the registry)."""
    return mask(runtime.settings.mlflow.tracking_uri), f"{name}/{version}"


def send_job_events(runtime: Runtime, runs: Sequence[JobRun], what: str) -> int:
    """Send the events of ``runs`` to ``[metadata] openlineage``; a failure is logged (the job stands).
    How many were sent."""
    target = emitter(runtime)
    if not target.enabled or not runs:
        return 0
    namespace = runtime.settings.metadata.namespace
    try:
        return target.emit([event for run in runs for event in run.events(namespace)])
    except SparkhuError as exc:
        log.error("cannot send the lineage events of %s: %s", what, exc)
        return 0


@contextmanager
def job_lineage(
    runtime: Runtime,
    job: str,
    run_id: str | None = None,
    *,
    inputs: Sequence[tuple[str, str]] = (),
    outputs: Sequence[tuple[str, str]] = (),
) -> Iterator[JobRun]:
    """The block is one run of ``job``: when it ends, its ``START`` and ``COMPLETE`` events are sent
    (``FAIL`` if it raised, or set ``status = "failed"``); the caller may set ``run_id`` (its own
    run's id, known once it started), add ``outputs`` and ``detail``.

    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from sparkhu.config import Settings
    >>> with tempfile.TemporaryDirectory() as home:
    ...     settings = Settings.load(toml_path=None, env={}, overrides={"home": home,
    ...                              "metadata": {"openlineage": f"{home}/events.jsonl"}})
    ...     with Runtime(settings) as runtime, job_lineage(runtime, "ingest:meters") as run:
    ...         run.outputs.append(lake_dataset(runtime, "raw/home_power"))
    ...     sent = [json.loads(line) for line in Path(home, "events.jsonl").read_text().splitlines()]
    >>> [(e["eventType"], e["job"]["name"]) for e in sent]
    [('START', 'ingest:meters'), ('COMPLETE', 'ingest:meters')]
    """
    run = JobRun(job, run_id or str(uuid.uuid4()), list(inputs), list(outputs))
    try:
        yield run
    except BaseException as exc:
        run.status = "failed"
        run.detail["error"] = str(exc)[:500]
        raise
    finally:
        run.finished_at = datetime.now(UTC)
        send_job_events(runtime, [run], f"{job} run {run.run_id}")
