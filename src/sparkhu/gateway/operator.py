"""What the operator's pages read: time buckets, anomalies, the runs grid, quality reports,
correlations and model versions; shared by GraphQL (:mod:`sparkhu.gateway.operator_types`) and REST.

Plain synchronous functions over :class:`~sparkhu.gateway.services.GatewayServices`, bounded
like :mod:`sparkhu.gateway.resolvers`. Where things live:

* points and time buckets: the series' actuals dataset (``services.actuals``), aggregated in
  DuckDB (:meth:`~sparkhu.storage.lake.Lake.read_buckets`);
* anomalies, gap slots (imputed points), outliers, correlations: the pipeline's ``analysis``
  tables ``<dataset>.anomalies``, ``.missing``, ``.outliers``, ``.correlation``;
* runs: the catalog's records of kind ``pipeline`` (one per task-day) and ``pipeline.series``
  (one per series and task-day), counted in the database;
* quality reports: ``<home>/reports/<dataset>/<day>/<task>.json`` (:mod:`sparkhu.pipeline.reports`);
* models: the registry (MLflow aliases) when the services can open it, else the catalog's copy.

>>> bucket_us("5m"), bucket_us("1h")
(300000000, 3600000000)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkhu.errors import InputError, NotFoundError, SparkhuError
from sparkhu.gateway.errors import LimitExceeded
from sparkhu.gateway.resolvers import actuals_location, check_range, get_series
from sparkhu.gateway.services import GatewayServices
from sparkhu.pipeline.records import RUN_KIND, SERIES_KIND
from sparkhu.storage.lake import BUCKET_SCHEMA
from sparkhu.timeaxis import TS_TYPE, duration_us, parse_duration, to_us_array, to_utc

log = logging.getLogger(__name__)

MAX_GRID_DAYS = 90
QUALITY_TASKS = ("regularity", "missing", "imputation", "outliers", "anomalies")
"""The DAG tasks whose reports the quality page charts."""
_DAY = timedelta(days=1)

# --- time buckets ----------------------------------------------------------------------


def bucket_us(text: str) -> int:
    """A bucket width (``30s``, ``5m``, ``1h``, ``1d``) in µs; at least one second."""
    span = parse_duration(text, "bucket")
    if span < timedelta(seconds=1):
        raise InputError(f"a bucket lasts at least 1s (got {text!r})", field="bucket")
    return duration_us(span)


def _bucket_range(
    services: GatewayServices, series_id: str, bucket: str, start: datetime | None, end: datetime | None
) -> tuple[int, datetime | None, datetime | None]:
    info = get_series(services, series_id)
    check_range(start, end)
    every = bucket_us(bucket)
    first = start or info.first_ts
    last = end or (info.last_ts + timedelta(microseconds=1) if info.last_ts else None)
    if first is not None and last is not None:
        buckets = (duration_us(to_utc(last) - to_utc(first)) + every - 1) // every
        if buckets > services.settings.max_points:
            raise LimitExceeded(
                f"{buckets:,} buckets of {bucket} in that range exceed the gateway's maximum of "
                f"{services.settings.max_points} points per query; widen the bucket or narrow start/end"
            )
    return every, start, end


def point_buckets(
    services: GatewayServices,
    series_id: str,
    bucket: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pa.Table:
    """Actuals of a series in buckets (``BUCKET_SCHEMA``: ts, min, max, mean, last, count)."""
    every, start, end = _bucket_range(services, series_id, bucket, start, end)
    zone, dataset = actuals_location(services, series_id)
    return services.lake.read_buckets(zone, dataset, series_id, every_us=every, start=start, end=end)


def forecast_buckets(
    services: GatewayServices,
    series_id: str,
    bucket: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pa.Table:
    """Blended forecasts of a series by target time in buckets (``BUCKET_SCHEMA``)."""
    every, start, end = _bucket_range(services, series_id, bucket, start, end)
    table = services.predictions.blended(
        series_id, start=start, end=end, limit=services.settings.max_points + 1
    )
    if table.num_rows > services.settings.max_points:
        raise LimitExceeded(
            f"forecasts of {series_id!r} in that range hold more than {services.settings.max_points} points; "
            "narrow start/end"
        )
    return bucket_table(table.column("target_ts"), table.column("value"), every)


def bucket_table(
    ts: pa.ChunkedArray | pa.Array, values: pa.ChunkedArray | pa.Array, every_us: int
) -> pa.Table:
    """(ts, value) sorted by ts in buckets of ``every_us`` (``BUCKET_SCHEMA``), with Arrow's group-by.

    >>> t = pa.array([0, 60_000_000, 120_000_000]).cast(TS_TYPE)
    >>> bucket_table(t, pa.array([1.0, 3.0, 5.0]), 120_000_000).column("last").to_pylist()
    [3.0, 5.0]
    """
    if len(ts) == 0:
        return BUCKET_SCHEMA.empty_table()
    micros = to_us_array(ts)
    start = pa.array(micros // every_us * every_us)
    frame = pa.table(
        {
            "b": start,
            "v": pa.array(values).cast(pa.float64())
            if isinstance(values, pa.Array)
            else values.cast(pa.float64()),
        }
    )
    grouped = frame.group_by("b", use_threads=False).aggregate(
        [("v", "min"), ("v", "max"), ("v", "mean"), ("v", "last"), ("v", "count")]
    )
    grouped = grouped.sort_by("b")
    return pa.table(
        {
            "ts": grouped.column("b").cast(TS_TYPE),
            "min": grouped.column("v_min"),
            "max": grouped.column("v_max"),
            "mean": grouped.column("v_mean"),
            "last": grouped.column("v_last"),
            "count": grouped.column("v_count"),
        }
    ).cast(BUCKET_SCHEMA)


# --- marks on the series explorer ------------------------------------------------------


def analysis_rows(
    services: GatewayServices,
    series_id: str,
    name: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pa.Table:
    """Rows of the series' pipeline table ``<dataset>.<name>`` (anomalies, missing, outliers) in range.

    An absent table (the pipeline has not run) is an empty one; at most ``max_points`` rows.
    """
    get_series(services, series_id)
    check_range(start, end)
    _zone, dataset = actuals_location(services, series_id)
    try:
        table = services.lake.read_table(
            "analysis", f"{dataset}.{name}", series=[series_id], start=start, end=end
        )
    except NotFoundError:
        return pa.table({"series_id": pa.array([], pa.string()), "ts": pa.array([], TS_TYPE)})
    if table.num_rows > services.settings.max_points:
        raise LimitExceeded(
            f"{name} of {series_id!r} in that range hold more than {services.settings.max_points} rows; "
            "narrow start/end"
        )
    return table


@dataclass(frozen=True)
class Annotation:
    """A moment on the time axis: a pipeline day done, a model version registered."""

    ts: datetime
    kind: str  # "pipeline" | "model"
    label: str
    status: str = ""


def time_annotations(
    services: GatewayServices, series_id: str, start: datetime | None = None, end: datetime | None = None
) -> list[Annotation]:
    """Pipeline days of the series' dataset (at the end of the day they cleaned) and model versions."""
    get_series(services, series_id)
    check_range(start, end)
    _zone, dataset = actuals_location(services, series_id)
    since = start - _DAY if start is not None else None
    records = services.catalog.runs(
        kind=RUN_KIND, name_prefix=f"{dataset}/", since=since, until=end, limit=10_000
    )
    days: dict[datetime, list[str]] = {}
    for record in records:
        if record.interval_end is not None:
            days.setdefault(to_utc(record.interval_end), []).append(record.status)
    found = [
        Annotation(
            ts,
            "pipeline",
            f"pipeline {(ts - _DAY).date()}: {statuses.count('success')}/{len(statuses)} tasks ok",
            "success" if all(s == "success" for s in statuses) else "failed",
        )
        for ts, statuses in days.items()
    ]
    for version in services.catalog.models(series_id=series_id):
        found.append(
            Annotation(to_utc(version["created_at"]), "model", f"{version['name']} v{version['version']}")
        )
    inside = [a for a in found if (start is None or a.ts >= start) and (end is None or a.ts < end)]
    return sorted(inside, key=lambda a: a.ts)


# --- the runs grid ---------------------------------------------------------------------


@dataclass
class GridCell:
    """One task-day of the grid: the newest record's status and its series' outcomes."""

    task: str
    day: date
    status: str
    run_id: str | None = None
    rows_in: int | None = None
    rows_out: int | None = None
    seconds: float | None = None
    error: str | None = None
    series: dict[str, int] = field(default_factory=dict)
    report: str | None = None


@dataclass
class RunGrid:
    """Tasks × days (oldest day first), Airflow's grid; ``cells`` holds only the task-days that ran."""

    days: list[date]
    tasks: list[str]
    cells: list[GridCell]


def run_grid(
    services: GatewayServices,
    *,
    days: int = 30,
    until: date | None = None,
    dataset: str | None = None,
    series_id: str | None = None,
    status: str | None = None,
    task: str | None = None,
    series_counts: bool = False,
) -> RunGrid:
    """The pipeline's task-days of the ``days`` days up to ``until`` (default: today, UTC).

    Without ``series_id``: per task-day, the newest ``pipeline`` record (and, with
    ``series_counts``, the counts of its series by status, read per task through the catalog's
    ``(kind, name)`` index: ask for them for a few tasks — one cell's — not for a whole grid of
    1,000 series); with ``series_id``, the outcome of that one series. ``status`` keeps the cells
    of that status; ``task`` the tasks whose name contains it.
    """
    if not 1 <= days <= MAX_GRID_DAYS:
        raise InputError(f"must be between 1 and {MAX_GRID_DAYS} (got {days})", field="days")
    last = until or datetime.now(UTC).date()
    first = last - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = since + days * _DAY
    prefix = f"{dataset}/" if dataset else None
    if series_id is not None:
        get_series(services, series_id)
    cells: dict[tuple[str, date], GridCell] = {}
    records = services.catalog.runs(
        kind=SERIES_KIND if series_id else RUN_KIND,
        name_prefix=prefix,
        since=since,
        until=end,
        series_id=series_id,
        limit=1_000_000,
    )
    for record in records:  # newest first: the first record of a task-day is the one shown
        if record.interval_start is None:
            continue
        key = (record.name, to_utc(record.interval_start).date())
        if key not in cells:
            seconds = record.params.get("seconds")
            cells[key] = GridCell(
                record.name,
                key[1],
                record.status,
                record.run_id,
                record.rows_in,
                record.rows_out,
                float(seconds) if isinstance(seconds, int | float) else None,
                record.error,
            )
    names = sorted({name for name, _ in cells if not task or task in name})
    if series_id is None and series_counts:
        for one in names:
            for name, start, state, count in services.catalog.run_counts(
                SERIES_KIND, name=one, since=since, until=end
            ):
                cell = cells.get((name, to_utc(start).date()))
                if cell is not None:
                    cell.series[state] = cell.series.get(state, 0) + count
    for cell in cells.values():
        cell.report = report_path(services, cell.task, cell.day)
    tasks = names
    shown = [c for c in cells.values() if c.task in tasks and (status is None or c.status == status)]
    shown.sort(key=lambda c: (c.task, c.day))
    return RunGrid([first + timedelta(days=i) for i in range(days)], tasks, shown)


def report_path(services: GatewayServices, name: str, day: date) -> str | None:
    """``/reports/<dataset>/<day>/<task>.html`` of a task-day record named ``<dataset>/<task>``."""
    if services.reports is None or "/" not in name:
        return None
    dataset, task = name.split("/", 1)
    return f"/reports/{dataset}/{day.isoformat()}/{task}.html"


def rerun(services: GatewayServices, name: str, day: date, actor: str) -> str:
    """Run the task-day ``<dataset>/<task>`` again (audited); its status."""
    if services.rerun is None:
        raise InputError("re-runs are off: this gateway was started without a pipeline", field="name")
    if "/" not in name:
        raise InputError(f"{name!r} is not <dataset>/<task>", field="name")
    dataset, task = name.split("/", 1)
    services.catalog.audit(actor, "rerun_task_day", name, {"day": day.isoformat()})
    return services.rerun(dataset, task, day)


# --- quality reports -------------------------------------------------------------------


@dataclass(frozen=True)
class QualityReport:
    """One task's report of one day, for one series (``figures``) and the whole dataset (``totals``)."""

    day: date
    task: str
    status: str
    figures: dict[str, Any]
    totals: dict[str, Any]


def quality_reports(
    services: GatewayServices, series_id: str, days: int = 30, until: date | None = None
) -> list[QualityReport]:
    """The DAG's reports (:data:`QUALITY_TASKS`) of the series' dataset, per day, oldest first."""
    get_series(services, series_id)
    if not 1 <= days <= MAX_GRID_DAYS:
        raise InputError(f"must be between 1 and {MAX_GRID_DAYS} (got {days})", field="days")
    if services.reports is None:
        return []
    _zone, dataset = actuals_location(services, series_id)
    folder = Path(services.reports) / dataset
    if not folder.is_dir():
        return []
    last = until or datetime.now(UTC).date()
    wanted = {(last - timedelta(days=i)).isoformat() for i in range(days)}
    found: list[QualityReport] = []
    for day_dir in sorted(p for p in folder.iterdir() if p.name in wanted):
        for task in QUALITY_TASKS:
            path = day_dir / f"{task}.json"
            if not path.is_file():
                continue
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                log.warning("skipping unreadable report %s: %s", path, exc)
                continue
            figures = (doc.get("per_series") or {}).get(series_id) or {}
            found.append(
                QualityReport(
                    date.fromisoformat(day_dir.name),
                    task,
                    str(doc.get("status", "")),
                    figures,
                    dict(doc.get("figures") or {}),
                )
            )
    return found


# --- correlations ----------------------------------------------------------------------


def correlations(
    services: GatewayServices, dataset: str, day: date | None = None, limit: int = 1_000
) -> pa.Table:
    """The pairs the ``correlation`` task found in ``dataset`` (series_a, series_b, lag_s, pearson,
    spearman, n) on ``day`` (default: the newest day it ran), strongest |pearson| first."""
    if limit < 1 or limit > services.settings.max_points:
        raise InputError(f"must be between 1 and {services.settings.max_points} (got {limit})", field="limit")
    try:
        if day is None:
            parts = services.lake.partitions("analysis", f"{dataset}.correlation")
            if not parts:
                raise NotFoundError("none")
            start = parts[-1].start
            day = start.date()
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        table = services.lake.read_table("analysis", f"{dataset}.correlation", start=start, end=start + _DAY)
    except NotFoundError as exc:
        raise NotFoundError(
            f"no correlations of dataset {dataset!r}: the pipeline's correlation task has not run on it"
        ) from exc
    except SparkhuError:
        raise
    if table.num_rows == 0 or "series_a" not in table.column_names:
        return pa.table({"series_a": pa.array([], pa.string())})
    strength = pc.abs(table.column("pearson").cast(pa.float64()))
    order = np.argsort(-np.nan_to_num(strength.to_numpy(zero_copy_only=False), nan=-1.0), kind="stable")
    return table.take(pa.array(order[:limit]))


# --- models ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version with its aliases and back-test metrics."""

    name: str
    version: str
    series_id: str | None
    aliases: tuple[str, ...]
    metrics: dict[str, float]
    created_at: datetime | None
    model: str = ""


def model_versions(services: GatewayServices, series_id: str | None = None) -> list[ModelVersion]:
    """Versions of the registry (newest first), of one series when given.

    The registry is read when the services can open it (aliases: champion, challenger,
    previous); when it cannot be opened, the catalog's copy is shown without aliases.
    """
    if series_id is not None:
        get_series(services, series_id)
    if services.registry is not None:
        try:
            registry = services.registry()
            return [
                ModelVersion(
                    v.name,
                    str(v.version),
                    v.series_id,
                    tuple(v.aliases),
                    dict(v.metrics),
                    v.created_at,
                    v.model,
                )
                for v in registry.versions(series_id)
            ]
        except SparkhuError as exc:
            log.warning("the model registry does not answer, showing the catalog's versions: %s", exc)
    return [
        ModelVersion(
            row["name"],
            str(row["version"]),
            row["series_id"],
            tuple(row.get("aliases") or ()),
            {k: float(v) for k, v in (row.get("metrics") or {}).items() if isinstance(v, int | float)},
            row["created_at"],
            str((row.get("metrics") or {}).get("model", "")),
        )
        for row in services.catalog.models(series_id=series_id)
    ]
