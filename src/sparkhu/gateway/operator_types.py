"""GraphQL of the operator's pages, merged into the gateway's Query and Mutation.

Time buckets (``pointBuckets``, ``forecastBuckets``: ``bucket: "5m"`` with min/max/mean/last/count
per bucket), the marks of the series explorer (``anomalies``, ``gaps``, ``outliers``,
``annotations``), the runs grid (``runGrid``, re-run with ``rerunTaskDay``, token-guarded),
``qualityReports``, ``correlations`` and ``modelVersions``. The reads are in
:mod:`sparkhu.gateway.operator`.

>>> import strawberry
>>> sdl = str(strawberry.Schema(OperatorQuery))
>>> "pointBuckets(seriesId: String!, bucket: String!, start: DateTime = null, end: DateTime = null)" in sdl
True
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pyarrow as pa
import strawberry
from strawberry.scalars import JSON

from sparkhu.gateway import operator as op
from sparkhu.gateway import resolvers as r
from sparkhu.gateway.types import Info, TokenRequired, actor, call, floats


@strawberry.type(description="Values in time buckets (columns), each bucket named by its start.")
class Buckets:
    bucket: str
    buckets: int
    ts: list[datetime]
    min: list[float | None]
    max: list[float | None]
    mean: list[float | None]
    last: list[float | None]
    count: list[int]


def _buckets(bucket: str, table: pa.Table) -> Buckets:
    return Buckets(
        bucket=bucket,
        buckets=table.num_rows,
        ts=r.datetimes(table.column("ts")),
        min=floats(table, "min"),
        max=floats(table, "max"),
        mean=floats(table, "mean"),
        last=floats(table, "last"),
        count=table.column("count").to_pylist(),
    )


@strawberry.type(description="A point the pipeline's anomaly task flagged (robust z-score of the residual).")
class Anomaly:
    ts: datetime
    score: float | None
    resid: float | None
    method: str


@strawberry.type(description="A missing slot the pipeline found (and imputed) in a series.")
class Gap:
    ts: datetime
    slots: int


@strawberry.type(description="A point the pipeline's outlier task removed (outside [lower, upper]).")
class Outlier:
    ts: datetime
    value: float | None
    lower: float | None
    upper: float | None


@strawberry.type(description="A moment on the time axis: a pipeline day done, a model version registered.")
class Annotation:
    ts: datetime
    kind: str
    label: str
    status: str


@strawberry.type(description="One task-day of the runs grid.")
class GridCell:
    task: str
    day: date
    status: str
    run_id: str | None
    rows_in: int | None
    rows_out: int | None
    seconds: float | None
    error: str | None
    series_success: int
    series_failed: int
    series_skipped: int
    report: str | None


@strawberry.type(description="Tasks × days of the pipeline (Airflow's grid); cells only where a task ran.")
class RunGrid:
    days: list[date]
    tasks: list[str]
    cells: list[GridCell]


@strawberry.type(description="One task's report of one day: the series' figures and the dataset's totals.")
class QualityReport:
    day: date
    task: str
    status: str
    figures: JSON
    totals: JSON


@strawberry.type(description="A correlated pair of series at its best lag.")
class Correlation:
    series_a: str
    series_b: str
    lag_s: float
    pearson: float | None
    spearman: float | None
    n: int


@strawberry.type(description="A registered model version with its aliases and back-test metrics.")
class ModelVersion:
    name: str
    version: str
    series_id: str | None
    aliases: list[str]
    metrics: JSON
    created_at: datetime | None
    model: str


@strawberry.type
class Rerun:
    name: str
    day: date
    status: str


def _rows(table: pa.Table, names: tuple[str, ...]) -> list[dict[str, Any]]:
    cols: dict[str, list[object]] = {}
    for name in names:
        if name == "ts":
            cols[name] = list(r.datetimes(table.column("ts")))
        elif name in table.column_names:
            column = table.column(name)
            cols[name] = (
                list(floats(table, name)) if pa.types.is_floating(column.type) else column.to_pylist()
            )
        else:
            cols[name] = [None] * table.num_rows
    return [dict(zip(names, values, strict=True)) for values in zip(*cols.values(), strict=True)]


@strawberry.type
class OperatorQuery:
    @strawberry.field(description='Actuals in time buckets (bucket: "30s", "5m", "1h", "1d"), oldest first.')
    async def point_buckets(
        self,
        info: Info,
        series_id: str,
        bucket: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Buckets:
        table = await call(op.point_buckets, info.context.services, series_id, bucket, start, end)
        return _buckets(bucket, table)

    @strawberry.field(description="Blended forecasts in time buckets of their target time.")
    async def forecast_buckets(
        self,
        info: Info,
        series_id: str,
        bucket: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Buckets:
        table = await call(op.forecast_buckets, info.context.services, series_id, bucket, start, end)
        return _buckets(bucket, table)

    @strawberry.field(description="Anomalies the pipeline flagged in a series, oldest first.")
    async def anomalies(
        self,
        info: Info,
        series_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
    ) -> list[Anomaly]:
        table = await call(op.analysis_rows, info.context.services, series_id, "anomalies", start, end)
        rows = _rows(
            table.slice(0, r.bound_limit(limit, info.context.services.settings.max_points)),
            ("ts", "score", "resid", "method"),
        )
        return [
            Anomaly(ts=x["ts"], score=x["score"], resid=x["resid"], method=str(x["method"] or ""))
            for x in rows
        ]

    @strawberry.field(description="Missing slots of a series (filled by the imputation task), oldest first.")
    async def gaps(
        self,
        info: Info,
        series_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
    ) -> list[Gap]:
        table = await call(op.analysis_rows, info.context.services, series_id, "missing", start, end)
        rows = _rows(
            table.slice(0, r.bound_limit(limit, info.context.services.settings.max_points)),
            ("ts", "gap_slots"),
        )
        return [Gap(ts=x["ts"], slots=int(x["gap_slots"] or 1)) for x in rows]

    @strawberry.field(description="Outliers the pipeline removed from a series, oldest first.")
    async def outliers(
        self,
        info: Info,
        series_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
    ) -> list[Outlier]:
        table = await call(op.analysis_rows, info.context.services, series_id, "outliers", start, end)
        rows = _rows(
            table.slice(0, r.bound_limit(limit, info.context.services.settings.max_points)),
            ("ts", "value", "lower", "upper"),
        )
        return [Outlier(**x) for x in rows]

    @strawberry.field(description="Pipeline days and model versions of a series, for the time axis.")
    async def annotations(
        self, info: Info, series_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[Annotation]:
        found = await call(op.time_annotations, info.context.services, series_id, start, end)
        return [Annotation(ts=a.ts, kind=a.kind, label=a.label, status=a.status) for a in found]

    @strawberry.field(
        description="The pipeline's tasks × days (newest record per task-day), Airflow's grid; seriesCounts: "
        "count each task-day's series by status (ask for one task: it reads every series record of it)."
    )
    async def run_grid(
        self,
        info: Info,
        days: int = 30,
        until: date | None = None,
        dataset: str | None = None,
        series_id: str | None = None,
        status: str | None = None,
        task: str | None = None,
        series_counts: bool = False,
    ) -> RunGrid:
        grid = await call(
            lambda: op.run_grid(
                info.context.services,
                days=days,
                until=until,
                dataset=dataset,
                series_id=series_id,
                status=status,
                task=task,
                series_counts=series_counts,
            )
        )
        cells = [
            GridCell(
                task=c.task,
                day=c.day,
                status=c.status,
                run_id=c.run_id,
                rows_in=c.rows_in,
                rows_out=c.rows_out,
                seconds=c.seconds,
                error=c.error,
                series_success=c.series.get("success", 0),
                series_failed=c.series.get("failed", 0),
                series_skipped=c.series.get("skipped", 0),
                report=c.report,
            )
            for c in grid.cells
        ]
        return RunGrid(days=grid.days, tasks=grid.tasks, cells=cells)

    @strawberry.field(description="The DAG's quality reports of a series' dataset, per day and task.")
    async def quality_reports(
        self, info: Info, series_id: str, days: int = 30, until: date | None = None
    ) -> list[QualityReport]:
        found = await call(op.quality_reports, info.context.services, series_id, days, until)
        return [
            QualityReport(
                day=q.day, task=q.task, status=q.status, figures=JSON(q.figures), totals=JSON(q.totals)
            )
            for q in found
        ]

    @strawberry.field(
        description="Correlated pairs of a dataset on a day (default: the newest), strongest first."
    )
    async def correlations(
        self, info: Info, dataset: str, day: date | None = None, limit: int = 1000
    ) -> list[Correlation]:
        table = await call(op.correlations, info.context.services, dataset, day, limit)
        if "pearson" not in table.column_names:
            return []
        rows = _rows(table, ("series_a", "series_b", "lag_s", "pearson", "spearman", "n"))
        return [Correlation(**x) for x in rows]

    @strawberry.field(description="Registered model versions (of one series), newest first, with aliases.")
    async def model_versions(self, info: Info, series_id: str | None = None) -> list[ModelVersion]:
        found = await call(op.model_versions, info.context.services, series_id)
        return [
            ModelVersion(
                name=v.name,
                version=v.version,
                series_id=v.series_id,
                aliases=list(v.aliases),
                metrics=JSON(v.metrics),
                created_at=v.created_at,
                model=v.model,
            )
            for v in found
        ]


@strawberry.type
class OperatorMutation:
    @strawberry.mutation(
        description="Run one task-day of the pipeline again (name: <dataset>/<task>); audited.",
        permission_classes=[TokenRequired],
    )
    async def rerun_task_day(self, info: Info, name: str, day: date) -> Rerun:
        status = await call(op.rerun, info.context.services, name, day, actor(info))
        return Rerun(name=name, day=day, status=status)
