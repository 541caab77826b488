"""Spark event logs (JSON lines) read into what a study and the advisor need.

:func:`read_eventlog` takes an event log file, or a directory holding one (the newest
application's), and returns an :class:`AppLog`: the application's span, its executors
(added, removed, cores, host), its jobs and stages (with parents) and every finished task's
times and metrics, plus the Spark properties the application ran with. Rolling logs
(``eventlog_v2_*`` directories) are read part by part; compressed logs are refused with a
clear error (write them with ``spark.eventLog.compress=false``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparkhu.errors import InputError, NotFoundError

_COMPRESSED = (".lz4", ".lzf", ".snappy", ".zstd", ".zst")


@dataclass
class Task:
    """One finished task: where and when it ran (ms since the epoch) and its metrics."""

    stage: int
    attempt: int
    executor: str
    launch_ms: int
    finish_ms: int
    run_ms: int = 0
    cpu_ns: int = 0
    gc_ms: int = 0
    shuffle_read_bytes: int = 0
    shuffle_write_bytes: int = 0
    input_bytes: int = 0
    peak_memory: int = 0
    failed: bool = False

    @property
    def duration_ms(self) -> int:
        """Wall time of the task, launch to finish."""
        return max(self.finish_ms - self.launch_ms, 0)


@dataclass
class Stage:
    """One stage (attempt): its job, parents, tasks count and span."""

    id: int
    attempt: int
    name: str
    tasks: int
    parents: list[int]
    job: int = -1
    submitted_ms: int = 0
    completed_ms: int = 0


@dataclass
class Executor:
    """One executor: host, cores, when it was added and removed (ms)."""

    id: str
    host: str
    cores: int
    added_ms: int
    removed_ms: int | None = None
    reason: str = ""


@dataclass
class AppLog:
    """An application's event log, digested."""

    app_id: str
    name: str
    start_ms: int
    end_ms: int
    properties: dict[str, str] = field(default_factory=dict)
    executors: dict[str, Executor] = field(default_factory=dict)
    jobs: dict[int, tuple[int, int]] = field(default_factory=dict)  # id -> (start, end)
    stages: dict[tuple[int, int], Stage] = field(default_factory=dict)
    tasks: list[Task] = field(default_factory=list)
    peaks: dict[str, dict[str, int]] = field(default_factory=dict)  # executor -> peak metrics

    @property
    def wall_s(self) -> float:
        """The application's wall time in seconds."""
        return (self.end_ms - self.start_ms) / 1000

    def executor_seconds(self) -> dict[str, float]:
        """Seconds each executor was alive within the application."""
        return {
            e.id: max(((e.removed_ms or self.end_ms) - max(e.added_ms, self.start_ms)) / 1000, 0.0)
            for e in self.executors.values()
        }


def find_eventlog(path: str | Path) -> Path:
    """The event log at ``path``: the file itself, or the newest log in a directory."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"event log {path}: no such file or directory")
    if path.is_file() or path.name.startswith("eventlog_v2_"):
        return path
    candidates = [
        p
        for p in path.iterdir()
        if not p.name.startswith((".", "_"))
        and not p.name.endswith(".inprogress")
        and (p.is_file() or p.name.startswith("eventlog_v2_"))
    ]
    if not candidates:
        raise NotFoundError(f"event log directory {path} holds no finished event log")
    return max(candidates, key=lambda p: p.stat().st_mtime)


def read_eventlog(path: str | Path) -> AppLog:
    """Digest the event log at ``path`` (a file, a rolling log directory, or a folder of logs)."""
    log = find_eventlog(path)
    app = AppLog("", "", 0, 0)
    stage_jobs: dict[int, int] = {}
    seen = 0
    for n, event in _events(log):
        seen += 1
        kind = event.get("Event")
        try:
            _apply(app, kind, event, stage_jobs)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{kind} event is malformed ({exc!r})", source=str(log), line=n) from exc
    if not seen or not app.start_ms:
        raise InputError("no SparkListenerApplicationStart event: not a Spark event log", source=str(log))
    if not app.end_ms:  # unfinished application: its last event ends it
        app.end_ms = max(
            [app.start_ms, *(t.finish_ms for t in app.tasks), *(e for _, e in app.jobs.values())]
        )
    for stage in app.stages.values():
        stage.job = stage_jobs.get(stage.id, -1)
    return app


def _events(log: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    files = sorted(log.glob("events_*"), key=_part_number) if log.is_dir() else [log]
    for file in files:
        if file.suffix in _COMPRESSED:
            raise InputError(
                "compressed event logs are not read; run with spark.eventLog.compress=false", source=str(file)
            )
        with file.open(encoding="utf-8", errors="replace") as lines:
            for n, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError as exc:
                    if n == 1:
                        raise InputError(f"not a JSON event log ({exc})", source=str(file), line=n) from exc
                    continue  # a log cut short by a crash ends with half a line
                if isinstance(event, dict):
                    yield n, event


def _part_number(path: Path) -> int:
    try:
        return int(path.name.split("_")[1])
    except (IndexError, ValueError):
        return 0


def _apply(app: AppLog, kind: Any, e: dict[str, Any], stage_jobs: dict[int, int]) -> None:
    if kind == "SparkListenerApplicationStart":
        app.app_id, app.name, app.start_ms = (
            str(e.get("App ID", "")),
            str(e.get("App Name", "")),
            int(e["Timestamp"]),
        )
    elif kind == "SparkListenerApplicationEnd":
        app.end_ms = int(e["Timestamp"])
    elif kind == "SparkListenerEnvironmentUpdate":
        app.properties = {str(k): str(v) for k, v in (e.get("Spark Properties") or {}).items()}
    elif kind == "SparkListenerExecutorAdded":
        info = e.get("Executor Info", {})
        eid = str(e["Executor ID"])
        app.executors[eid] = Executor(
            eid, str(info.get("Host", "")), int(info.get("Total Cores", 0)), int(e["Timestamp"])
        )
    elif kind == "SparkListenerExecutorRemoved":
        executor = app.executors.get(str(e["Executor ID"]))
        if executor is not None:
            executor.removed_ms, executor.reason = int(e["Timestamp"]), str(e.get("Removed Reason", ""))
    elif kind == "SparkListenerJobStart":
        job = int(e["Job ID"])
        app.jobs[job] = (int(e.get("Submission Time", 0)), 0)
        for info in e.get("Stage Infos", []):
            stage_jobs[int(info["Stage ID"])] = job
    elif kind == "SparkListenerJobEnd":
        job = int(e["Job ID"])
        app.jobs[job] = (app.jobs.get(job, (0, 0))[0], int(e.get("Completion Time", 0)))
    elif kind in ("SparkListenerStageSubmitted", "SparkListenerStageCompleted"):
        info = e["Stage Info"]
        key = (int(info["Stage ID"]), int(info.get("Stage Attempt ID", 0)))
        stage = app.stages.get(key) or Stage(
            key[0], key[1], str(info.get("Stage Name", "")), int(info.get("Number of Tasks", 0)),
            [int(p) for p in info.get("Parent IDs", [])],
        )  # fmt: skip
        stage.submitted_ms = int(info.get("Submission Time") or stage.submitted_ms)
        stage.completed_ms = int(info.get("Completion Time") or stage.completed_ms)
        app.stages[key] = stage
    elif kind == "SparkListenerTaskEnd":
        app.tasks.append(_task(e))
    elif kind == "SparkListenerStageExecutorMetrics":
        peaks = app.peaks.setdefault(str(e["Executor ID"]), {})
        for name, value in (e.get("Executor Metrics") or {}).items():
            peaks[name] = max(peaks.get(name, 0), int(value))


def _task(e: dict[str, Any]) -> Task:
    info = e["Task Info"]
    metrics = e.get("Task Metrics") or {}
    shuffle_read = metrics.get("Shuffle Read Metrics") or {}
    shuffle_write = metrics.get("Shuffle Write Metrics") or {}
    return Task(
        stage=int(e["Stage ID"]),
        attempt=int(e.get("Stage Attempt ID", 0)),
        executor=str(info.get("Executor ID", "")),
        launch_ms=int(info["Launch Time"]),
        finish_ms=int(info.get("Finish Time") or info["Launch Time"]),
        run_ms=int(metrics.get("Executor Run Time", 0)),
        cpu_ns=int(metrics.get("Executor CPU Time", 0)),
        gc_ms=int(metrics.get("JVM GC Time", 0)),
        shuffle_read_bytes=int(shuffle_read.get("Remote Bytes Read", 0))
        + int(shuffle_read.get("Local Bytes Read", 0)),
        shuffle_write_bytes=int(shuffle_write.get("Shuffle Bytes Written", 0)),
        input_bytes=int((metrics.get("Input Metrics") or {}).get("Bytes Read", 0)),
        peak_memory=int(metrics.get("Peak Execution Memory", 0)),
        failed=bool(info.get("Failed", False)),
    )
