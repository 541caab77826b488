"""The platform service that runs the connectors declared at run time (REST, CLI), as the catalog says.

The catalog is the one truth (:class:`~sparkhu.connectors.declared.DeclaredConnectors`): the REST API
and ``sparkhu connectors`` only write declarations there, and :class:`ConnectorManager` — a service of
``sparkhu up``/``serve`` — looks at it every ``check_s`` seconds and makes the running connectors match:
it starts the ``RUNNING`` ones it does not run, stops the ``PAUSED`` and deleted ones, and restarts one
whose generation moved (a new config, ``restart``). So a declared connector survives a restart of the
platform: the next one finds it in the catalog and resumes from its watermarks.

Each source of a connector (a task, in Connect's words) runs in its own thread through
:func:`~sparkhu.connectors.runner.ingest_to_lake` into ``raw/<source>_<measurement>``: durable before
its watermark moves, bad records quarantined. A task that fails is ``FAILED`` with its error (the
connector then too) until it is restarted; a source that ends (files) is read again every
``repeat_s`` seconds (5 by default). The manager saves each connector's status — state, per task the
points, quarantined records, throughput, watermark and lag — in the catalog, where the REST API, the
CLI and the dashboard read it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sparkhu.app.runtime import Runtime
from sparkhu.connectors.base import SourceSpec
from sparkhu.connectors.declared import ConnectorStatus, Declared, DeclaredConnectors, specs_of
from sparkhu.connectors.influx_client import InfluxClient
from sparkhu.connectors.runner import ingest_to_lake
from sparkhu.timeaxis import US_PER_S, now_us

log = logging.getLogger(__name__)

__all__ = ["ConnectorManager", "influx_measurements"]


def influx_measurements(fields: Mapping[str, Any]) -> list[str]:
    """The measurements of the InfluxDB database a connector's fields name (``SHOW MEASUREMENTS``)."""
    client = InfluxClient(
        str(fields["url"]),
        who=f"influxdb connector {fields['name']!r}",
        username=fields.get("username"),
        password=fields.get("password"),
    )
    names: list[str] = []
    for result in client.query("SHOW MEASUREMENTS", str(fields["database"])):
        for series in result.get("series", []):
            names.extend(str(row[0]) for row in series.get("values", []))
    return sorted(names)


@dataclass
class _Task:
    spec: SourceSpec
    state: str = "RUNNING"
    points: int = 0
    quarantined: int = 0
    trace: str | None = None
    thread: threading.Thread | None = None
    last_points: int = 0
    last_at: float = field(default_factory=time.monotonic)


@dataclass
class _Running:
    declared: Declared
    stop: threading.Event
    tasks: list[_Task]
    failure: str | None = None


class ConnectorManager:
    """Run the declared connectors of ``runtime``'s catalog (see the module docstring)."""

    def __init__(self, runtime: Runtime, *, check_s: float = 1.0, repeat_s: float = 5.0) -> None:
        self.runtime = runtime
        self.declared = DeclaredConnectors(runtime.catalog)
        self.check_s, self.repeat_s = check_s, repeat_s
        self.worker_id = f"{socket.gethostname()}:{runtime.settings.gateway.port}"
        self.running: dict[str, _Running] = {}

    # ---- the service -----------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Reconcile every ``check_s`` seconds until ``stop``; then stop every connector."""
        try:
            while not stop.is_set():
                self.reconcile()
                stop.wait(self.check_s)
        finally:
            for name in list(self.running):
                self._stop(name)

    def figures(self) -> dict[str, float]:
        """Live counts: connectors running, points landed by them."""
        points = sum(t.points for r in self.running.values() for t in r.tasks)
        return {"connectors": float(len(self.running)), "points": float(points)}

    def reconcile(self) -> None:
        """Make the running connectors match the catalog once, and report their status."""
        wanted = {d.name: d for d in self.declared.all()}
        for name in list(self.running):
            declared = wanted.get(name)
            current = self.running[name].declared
            if declared is None or declared.state != "RUNNING" or declared.generation != current.generation:
                self._stop(name)
        for name, declared in wanted.items():
            if declared.state == "RUNNING" and name not in self.running:
                self._start(declared)
            if declared.state == "PAUSED":
                self.declared.report(name, declared.generation, ConnectorStatus("PAUSED", self.worker_id))
        for running in self.running.values():
            self._report(running)

    # ---- one connector ---------------------------------------------------------------
    def _start(self, declared: Declared) -> None:
        stop = threading.Event()
        try:
            specs = specs_of(declared.name, declared.config, measurements=influx_measurements)
        except Exception as exc:  # a connector that cannot start is FAILED, the platform goes on
            log.error("connector %s cannot start: %s", declared.name, exc)
            self.running[declared.name] = _Running(declared, stop, [], failure=f"{type(exc).__name__}: {exc}")
            return
        tasks = [_Task(spec) for spec in specs]
        for task in tasks:
            task.thread = threading.Thread(
                target=self._task,
                args=(declared.name, task, stop),
                name=f"connector {task.spec.name}",
                daemon=True,
            )
            task.thread.start()
        self.running[declared.name] = _Running(declared, stop, tasks)

    def _stop(self, name: str) -> None:
        running = self.running.pop(name)
        running.stop.set()
        for task in running.tasks:
            if task.thread is not None:
                task.thread.join(timeout=30)

    def _task(self, name: str, task: _Task, stop: threading.Event) -> None:
        runtime = self.runtime
        while not stop.is_set():
            source = task.spec.open()
            if hasattr(source, "stop"):
                source.stop = stop  # the source's own waits end with the platform
                client = getattr(source, "client", None)
                if client is not None:
                    client.stop = stop
            done = task.points

            def progress(points: int, before: int = done) -> None:
                task.points = before + points

            try:
                stats = ingest_to_lake(
                    source,
                    runtime.lake,
                    runtime.catalog,
                    dataset=task.spec.dataset,
                    stop=stop,
                    progress=progress,
                )
            except Exception as exc:  # reported as the task's trace; the platform goes on
                log.error("connector %s: task %s failed: %s", name, task.spec.name, exc)
                task.state, task.trace = "FAILED", f"{type(exc).__name__}: {exc}"
                return
            task.points = done + stats.points
            task.quarantined += stats.quarantined
            stop.wait(getattr(task.spec, "repeat_s", None) or self.repeat_s)

    def _report(self, running: _Running) -> None:
        now = time.monotonic()
        tasks = []
        for number, task in enumerate(running.tasks):
            watermark = (
                self.runtime.catalog.get_watermark(task.spec.name, f"lake:raw/{task.spec.dataset}") or {}
            )
            elapsed = max(1e-9, now - task.last_at)
            rate = (task.points - task.last_points) / elapsed
            task.last_points, task.last_at = task.points, now
            until = watermark.get("until_us") or watermark.get("emitted_until_us")
            entry: dict[str, Any] = {
                "id": number,
                "name": task.spec.name,
                "kind": task.spec.kind,
                "dataset": task.spec.dataset,
                "state": task.state,
                "worker_id": self.worker_id,
                "points": task.points,
                "quarantined": task.quarantined,
                "points_per_s": round(rate, 3),
                "watermark": _iso(until) if until is not None else watermark.get("offsets"),
                "lag_s": round((now_us() - until) / US_PER_S, 3) if until is not None else None,
            }
            if task.trace:
                entry["trace"] = task.trace
            tasks.append(entry)
        failed = running.failure is not None or any(t.state == "FAILED" for t in running.tasks)
        if running.failure is not None:
            tasks.append({"id": 0, "state": "FAILED", "worker_id": self.worker_id, "trace": running.failure})
        status = ConnectorStatus(
            "FAILED" if failed else "RUNNING", self.worker_id, tasks, datetime.now(UTC).isoformat()
        )
        self.declared.report(running.declared.name, running.declared.generation, status)


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / US_PER_S, UTC).isoformat()
