"""The GraphQL types of the gateway, the ``DateTime`` scalar and Arrow → GraphQL converters.

Timestamps are ISO 8601 (``DateTime``): inputs may carry any offset (none means UTC),
outputs are UTC with a ``Z``. Lists of points come in two shapes: objects (``Point``,
``BlendedPoint``) for convenience, and parallel columns (``PointColumns``,
``BlendedColumns``) for many points — several times cheaper to execute and to send.

>>> _serialize_datetime(_parse_datetime("2024-03-01T09:00:00+09:00"))
'2024-03-01T00:00:00Z'
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread
import pyarrow as pa
import strawberry
from strawberry.permission import BasePermission
from strawberry.scalars import JSON

from sparkhu.errors import InputError
from sparkhu.gateway import resolvers as r
from sparkhu.gateway.auth import check_token
from sparkhu.gateway.services import GatewayServices
from sparkhu.storage.catalog import RunRecord, SeriesInfo
from sparkhu.timeaxis import parse_time, to_utc

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.websockets import WebSocket

T = TypeVar("T")


@dataclass
class GatewayContext:
    """What every resolver gets as ``info.context``."""

    services: GatewayServices
    request: Request | WebSocket


Info = strawberry.Info[GatewayContext, None]


class TokenRequired(BasePermission):
    """Mutations need ``Authorization: Bearer <gateway token>``."""

    message = "a valid bearer token is required"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        """Raise the precise AuthError instead of answering False."""
        context = info.context
        check_token(context.services.settings.token, context.request.headers.get("authorization"))
        return True


def actor(info: Info) -> str:
    """Who made a token-guarded change, for the audit log: the token and the client's address."""
    request = info.context.request
    return f"token@{request.client.host}" if request.client else "token"


_thread = threading.local()


async def call(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking storage call in a worker thread (directly if already in one, see :func:`off_loop`)."""
    if getattr(_thread, "off_loop", False):
        return fn(*args)
    return await anyio.to_thread.run_sync(functools.partial(fn, *args))


async def off_loop(
    work: Callable[[], Coroutine[Any, Any, T]], limiter: anyio.CapacityLimiter | None = None
) -> T:
    """Run the coroutine ``work()`` to its end in a worker thread, on an event loop of its own.

    The server's event loop stays free for health checks and other clients however much
    Python a request runs (a GraphQL execution completes and serialises every value in
    Python); inside, :func:`call` runs storage calls directly, as the thread may block.

    >>> import anyio
    >>> async def where() -> bool:
    ...     return await call(lambda: getattr(_thread, "off_loop", False))
    >>> anyio.run(off_loop, where), anyio.run(where)
    (True, False)
    """

    def run() -> T:
        _thread.off_loop = True
        try:
            return asyncio.run(work())
        finally:
            _thread.off_loop = False

    return await anyio.to_thread.run_sync(run, limiter=limiter)


# --- scalars ---------------------------------------------------------------------------


def _serialize_datetime(value: datetime) -> str:
    text = to_utc(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _parse_datetime(value: object) -> datetime:
    if isinstance(value, datetime):
        return to_utc(value)
    if not isinstance(value, str):
        raise InputError(f"{value!r} is not an ISO 8601 timestamp string", field="DateTime")
    return parse_time(value, "DateTime")


DateTimeScalar = strawberry.scalar(
    name="DateTime",
    description="ISO 8601 timestamp; inputs without an offset are UTC, outputs are UTC.",
    serialize=_serialize_datetime,
    parse_value=_parse_datetime,
)


# --- types -----------------------------------------------------------------------------


@strawberry.type(description="A series the catalog knows: source/measurement/field.")
class Series:
    id: str
    source: str
    measurement: str
    field: str
    unit: str | None
    period_seconds: float | None
    regular: bool | None
    first_ts: datetime | None
    last_ts: datetime | None
    count: int
    tags: JSON
    description: str | None = None

    @classmethod
    def of(cls, info: SeriesInfo) -> Series:
        """From a catalog record."""
        return cls(
            id=info.series_id,
            source=info.source,
            measurement=info.measurement,
            field=info.field,
            unit=info.unit,
            period_seconds=info.period_s,
            regular=info.regular,
            first_ts=info.first_ts,
            last_ts=info.last_ts,
            count=info.count,
            tags=JSON(dict(info.tags)),
            description=info.description,
        )

    @strawberry.field(description="The newest run records that concern this series.")
    async def runs(self, info: Info, limit: int = 10) -> list[Run]:
        records = await call(r.series_runs, info.context.services, self.id, limit)
        return [Run.of(record) for record in records]


@strawberry.type(description="One run of a pipeline task, connector, training or retention job.")
class Run:
    run_id: str
    kind: str
    name: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    series_id: str | None
    interval_start: datetime | None
    interval_end: datetime | None
    rows_in: int | None
    rows_out: int | None
    error: str | None
    params: JSON

    @classmethod
    def of(cls, record: RunRecord) -> Run:
        """From a catalog record."""
        return cls(
            run_id=record.run_id,
            kind=record.kind,
            name=record.name,
            status=record.status,
            started_at=record.started_at,
            finished_at=record.finished_at,
            series_id=record.series_id,
            interval_start=record.interval_start,
            interval_end=record.interval_end,
            rows_in=record.rows_in,
            rows_out=record.rows_out,
            error=record.error,
            params=JSON(dict(record.params)),
        )

    @strawberry.field(description="Seconds from start to finish; null while running.")
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (to_utc(self.finished_at) - to_utc(self.started_at)).total_seconds()

    @strawberry.field(description="The series this run concerns, if any.")
    async def series(self, info: Info) -> Series | None:
        if self.series_id is None:
            return None
        return Series.of(await call(r.get_series, info.context.services, self.series_id))


@strawberry.type(description="An actual observation.")
class Point:
    ts: datetime
    value: float | None


@strawberry.type(description="The blended (SES) forecast for one target time.")
class BlendedPoint:
    ts: datetime
    value: float
    lower: float | None
    upper: float | None
    updates: int
    updated_at: datetime


@strawberry.type(description="One forecast as a model produced it.")
class RawForecast:
    origin: datetime
    target: datetime
    step: int
    value: float
    lower: float | None
    upper: float | None
    model: str


@strawberry.type(description="Parallel lists of timestamps and values.")
class TimeValues:
    timestamps: list[datetime]
    values: list[float | None]


@strawberry.type(description="The original gateway's answer: actuals and forecasts of one feature.")
class FeaturePrediction:
    series_id: str
    start: datetime
    end: datetime | None
    length: int
    feature: TimeValues
    prediction: TimeValues


@strawberry.input(
    description="The original gateway's question; series id = <dbName lowercased>/<tableName>/<featureName>."
)
class PredictionInput:
    db_name: str
    table_name: str
    feature_name: str
    start: datetime
    end: datetime | None = None
    req_num: int | None = None


@strawberry.type(description="The blending weight now in force for a series.")
class BlendAlpha:
    series_id: str
    alpha: float


@strawberry.type(description="Actual points as parallel columns: the fast shape for many points.")
class PointColumns:
    count: int
    ts: list[datetime]
    value: list[float | None]


@strawberry.type(description="Blended forecasts as parallel columns: the fast shape for many points.")
class BlendedColumns:
    count: int
    ts: list[datetime]
    value: list[float]
    lower: list[float | None]
    upper: list[float | None]
    updates: list[int]


def floats(table: pa.Table, name: str) -> list[float | None]:
    """A float column as a list, NaN as None (GraphQL has no NaN)."""
    values: list[float | None] = r.nan_to_null(table.column(name)).to_pylist()
    return values


def to_points(table: pa.Table) -> list[Point]:
    """POINT_SCHEMA rows as Point objects."""
    ts, values = r.datetimes(table.column("ts")), floats(table, "value")
    return [Point(ts=t, value=v) for t, v in zip(ts, values, strict=True)]


def to_blended(table: pa.Table) -> list[BlendedPoint]:
    """BLENDED_SCHEMA rows as BlendedPoint objects."""
    columns = to_blended_columns(table)
    return [
        BlendedPoint(ts=t, value=v, lower=lo, upper=up, updates=n, updated_at=u)
        for t, v, lo, up, n, u in zip(
            columns.ts,
            columns.value,
            columns.lower,
            columns.upper,
            columns.updates,
            r.datetimes(table.column("updated_at")),
            strict=True,
        )
    ]


def to_blended_columns(table: pa.Table) -> BlendedColumns:
    """BLENDED_SCHEMA rows as columns."""
    return BlendedColumns(
        count=table.num_rows,
        ts=r.datetimes(table.column("target_ts")),
        value=table.column("value").to_pylist(),
        lower=floats(table, "lower"),
        upper=floats(table, "upper"),
        updates=table.column("updates").to_pylist(),
    )


def to_raw(table: pa.Table) -> list[RawForecast]:
    """FORECAST_SCHEMA rows as RawForecast objects."""
    origins, targets = r.datetimes(table.column("origin_ts")), r.datetimes(table.column("target_ts"))
    cols = [table.column(name).to_pylist() for name in ("step", "value", "model")]
    lower, upper = floats(table, "lower"), floats(table, "upper")
    return [
        RawForecast(origin=o, target=t, step=s, value=v, model=m, lower=lo, upper=up)
        for o, t, s, v, m, lo, up in zip(origins, targets, *cols, lower, upper, strict=True)
    ]


def to_time_values(table: pa.Table, ts: str) -> TimeValues:
    """Timestamps (column ``ts``) and values as the original gateway's parallel lists."""
    return TimeValues(timestamps=r.datetimes(table.column(ts)), values=floats(table, "value"))
