"""What a run of the DAG produces: the shared words of the runner, its drivers and its hooks.

A :class:`TaskRun` is one task over one interval of days (a *task-day*; ``days_per_run``
days for back-fills) with a :class:`SeriesResult` per series; :meth:`PipelineRunner.run
<sparkhu.pipeline.runner.PipelineRunner.run>` returns a :class:`RunSummary` of them and of
its plan (:class:`PlanStep`). :func:`failure_reason` words an exception as it is recorded,
:func:`jsonable` makes figures and parameters fit for JSON (run records, reports, metadata).

>>> from datetime import UTC, datetime
>>> run = TaskRun("impute", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC))
>>> run.series = [SeriesResult("a/b/x", "success"), SeriesResult("a/b/y", "skipped", error="constant")]
>>> run.count("success"), run.skipped
(1, {'constant': 1})
>>> jsonable({"k": np.float64(1.5), "lags": (1, 2), "window": timedelta(hours=1), "bad": float("nan")})
{'k': 1.5, 'lags': [1, 2], 'window': 3600.0, 'bad': None}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sparkhu.errors import SparkhuError


@dataclass
class SeriesResult:
    """One series' outcome in one task-day."""

    series_id: str
    status: str  # success, failed, skipped
    rows_in: int = 0
    rows_out: int = 0
    error: str | None = None
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskRun:
    """One task over one interval of days: what it read, wrote, skipped and how it ended."""

    task: str
    start: datetime
    end: datetime
    status: str = "success"
    attempts: int = 1
    rows_in: int = 0
    rows_out: dict[str, int] = field(default_factory=dict)
    series: list[SeriesResult] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    reports: list[Path] = field(default_factory=list)
    run_id: str = ""
    cpu_seconds: float = 0.0
    """CPU seconds of the task's function summed over workers (chained tasks; ``seconds`` adds
    the writing of its outputs), 0 for ``scope="all"`` tasks."""
    started_at: datetime | None = None
    """When the task-day began (wall clock, UTC): the first attempt of its chain or task."""

    @property
    def days(self) -> list[date]:
        """The UTC days of the interval."""
        return [self.start.date() + timedelta(days=i) for i in range((self.end - self.start).days)]

    def count(self, status: str) -> int:
        """How many series ended with ``status``."""
        return sum(1 for s in self.series if s.status == status)

    @property
    def skipped(self) -> dict[str, int]:
        """Skip reason → number of series."""
        out: dict[str, int] = {}
        for s in self.series:
            if s.status == "skipped":
                out[s.error or ""] = out.get(s.error or "", 0) + 1
        return out


@dataclass(frozen=True)
class PlanStep:
    """One task-interval of a run's plan: which datasets it reads (with look-back) and writes."""

    level: int
    task: str
    start: datetime
    end: datetime
    reads: tuple[tuple[str, str, datetime], ...]  # (dataset, zone/lake name, read start)
    writes: tuple[tuple[str, str], ...]  # (dataset, zone/lake name)


@dataclass
class RunSummary:
    """What :meth:`~sparkhu.pipeline.runner.PipelineRunner.run` did (or, dry, would do)."""

    dataset: str
    plan: list[PlanStep]
    runs: list[TaskRun] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def status(self) -> str:
        """``success`` when every task-day succeeded (``planned`` for a dry run)."""
        if self.dry_run:
            return "planned"
        return "success" if all(r.status == "success" for r in self.runs) else "failed"


def failure_reason(exc: BaseException) -> str:
    """The message recorded for an exception that failed a task-day: sparkhu's own errors as
    they are, others prefixed with their type."""
    return str(exc) if isinstance(exc, SparkhuError) else f"{type(exc).__name__}: {exc}"


def jsonable(value: Any) -> Any:
    """A JSON-able copy: numpy scalars and arrays to Python, non-finite floats to None, durations
    to seconds, instants to ISO text, other unknowns to strings."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    return str(value)
