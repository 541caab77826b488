"""The daily pipeline step: one day of one dataset through one task, recorded in the catalog.

:func:`run_daily_step` reads a day from a lake zone, maps
:func:`~sparkhu.pipeline.tasks.resample.dedup_and_resample` over its series with an engine,
replaces that day in the destination zone (so a re-run leaves the same rows, never
duplicates) and keeps a run record (start, finish, rows in and out, failed series).
:func:`catch_up` runs the days of a range that have no successful run yet. The full task
graph (:mod:`sparkhu.pipeline.dag`) will generalise this step; its contract stays: a task
is a pure frame-to-frame function, the runner binds it to datasets and to an engine.

The read extends one period on each side of the day, so a slot near midnight sees every
point that snaps to it; only slots inside the day are written.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sparkhu.engine.base import Engine, Failure
from sparkhu.errors import PipelineError, SparkhuError
from sparkhu.pipeline.tasks.resample import dedup_and_resample
from sparkhu.series import conform
from sparkhu.storage.catalog.catalog import Catalog, RunRecord
from sparkhu.storage.lake import Lake

log = logging.getLogger(__name__)

STEP_NAME = "dedup_and_resample"
RUN_KIND = "pipeline"


@dataclass
class StepResult:
    """The outcome of one step for one day."""

    name: str
    day: date
    run_id: str
    status: str  # "success" or "failed"
    rows_in: int
    rows_out: int
    series: int
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0


def run_daily_step(
    lake: Lake,
    catalog: Catalog,
    engine: Engine,
    day: date,
    src: tuple[str, str],
    dst: tuple[str, str] | None = None,
    period_s: float = 60,
) -> StepResult:
    """De-duplicate and resample ``day`` of ``src`` (zone, dataset) into ``dst`` (default: clean zone).

    Idempotent: the day's partitions in ``dst`` are replaced. Series that fail are listed in
    the result and the run record (status ``failed``); the others are still written. Storage
    errors are recorded in the run record and re-raised.
    """
    src_zone, src_dataset = _pair(src, "src")
    dst_zone, dst_dataset = _pair(dst, "dst") if dst is not None else ("clean", src_dataset)
    if isinstance(day, datetime) or not isinstance(day, date):
        raise PipelineError(f"day must be a datetime.date, got {day!r}")
    if isinstance(period_s, bool) or not isinstance(period_s, int | float) or not period_s > 0:
        raise PipelineError(f"period_s must be a positive number of seconds, got {period_s!r}")
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    run_id = uuid.uuid4().hex
    params: dict[str, Any] = {
        "src": f"{src_zone}/{src_dataset}",
        "dst": f"{dst_zone}/{dst_dataset}",
        "period_s": period_s,
    }
    catalog.start_run(
        RunRecord(
            run_id=run_id,
            kind=RUN_KIND,
            name=STEP_NAME,
            status="running",
            started_at=datetime.now(UTC),
            interval_start=start,
            interval_end=end,
            params=params,
        )
    )
    began = time.perf_counter()
    rows_in = 0
    try:
        margin = timedelta(seconds=period_s)
        points = lake.read(src_zone, src_dataset, start=start - margin, end=end + margin)
        rows_in = points.num_rows
        mapped, failures = engine.map_series(dedup_and_resample, points, period_s=period_s)
        out = _within(conform(mapped), start, end) if mapped.num_rows else mapped
        lake.replace(dst_zone, dst_dataset, conform(out), [day])
    except Exception as exc:
        catalog.finish_run(run_id, "failed", rows_in=rows_in, rows_out=0, error=str(exc))
        if isinstance(exc, SparkhuError):
            raise
        raise PipelineError(f"{STEP_NAME} {src_zone}/{src_dataset} {day}: {exc}") from exc
    status = "failed" if failures else "success"
    error = None
    if failures:
        listed = "; ".join(f"{sid}: {msg}" for sid, msg in failures[:20])
        more = f" (and {len(failures) - 20} more)" if len(failures) > 20 else ""
        error = f"{len(failures)} series failed: {listed}{more}"
        log.warning("%s %s %s: %s", STEP_NAME, params["src"], day, error)
    catalog.finish_run(run_id, status, rows_in=rows_in, rows_out=out.num_rows, error=error)
    series = len(pc.unique(out.column("series_id").cast(pa.string()))) if out.num_rows else 0
    return StepResult(
        name=STEP_NAME,
        day=day,
        run_id=run_id,
        status=status,
        rows_in=rows_in,
        rows_out=out.num_rows,
        series=series,
        failures=list(failures),
        seconds=time.perf_counter() - began,
    )


def catch_up(
    lake: Lake,
    catalog: Catalog,
    engine: Engine,
    start: date,
    end: date,
    src: tuple[str, str],
    dst: tuple[str, str] | None = None,
    period_s: float = 60,
    *,
    force: bool = False,
) -> list[StepResult]:
    """Run :func:`run_daily_step` for every day from ``start`` to ``end`` (both included) not yet done.

    A day is done when the catalog holds a successful run of this step for it with the same
    source, destination and period; ``force`` re-runs every day. Days run oldest first.
    """
    if end < start:
        raise PipelineError(f"catch_up: end {end} is before start {start}")
    src_zone, src_dataset = _pair(src, "src")
    dst_zone, dst_dataset = _pair(dst, "dst") if dst is not None else ("clean", src_dataset)
    wanted = {"src": f"{src_zone}/{src_dataset}", "dst": f"{dst_zone}/{dst_dataset}", "period_s": period_s}
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    done: set[date] = set()
    if not force:
        for run in catalog.runs(kind=RUN_KIND, name=STEP_NAME, limit=max(1000, 20 * len(days))):
            if run.status == "success" and run.interval_start is not None and _same(run.params, wanted):
                done.add(run.interval_start.astimezone(UTC).date())
    results = []
    for day in days:
        if day in done:
            continue
        results.append(run_daily_step(lake, catalog, engine, day, src, (dst_zone, dst_dataset), period_s))
    return results


def _within(table: pa.Table, start: datetime, end: datetime) -> pa.Table:
    ts = table.column("ts")
    lo = pa.scalar(start, type=ts.type)
    hi = pa.scalar(end, type=ts.type)
    return table.filter(pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi)))


def _same(params: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(params.get(key) == value for key, value in wanted.items())


def _pair(value: object, what: str) -> tuple[str, str]:
    if (
        not isinstance(value, tuple | list)
        or len(value) != 2
        or not all(isinstance(part, str) and part for part in value)
    ):
        raise PipelineError(f"{what} must be a (zone, dataset) pair of names, got {value!r}")
    return value[0], value[1]
