"""What the gateway reads and changes, shared by GraphQL and REST.

Plain synchronous functions over :class:`~sparkhu.gateway.services.GatewayServices` that return
Arrow tables or catalog records; the transports run them in a worker thread and only
format the result. Bounds are enforced here, once: a query may return at most
``settings.max_points`` rows (:class:`~sparkhu.gateway.errors.LimitExceeded` otherwise).

Compatibility with the original gateway: ``featurePrediction(dbName, tableName,
featureName)`` reads series ``<dbName lowercased>/<tableName>/<featureName>``, so
``AMPds2 / electricity / WHE.P`` is ``ampds2/electricity/WHE.P``.

>>> feature_series_id("AMPds2", "electricity", "WHE.P")
'ampds2/electricity/WHE.P'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkhu.errors import InputError, NotFoundError
from sparkhu.gateway.errors import LimitExceeded
from sparkhu.gateway.services import GatewayServices
from sparkhu.series import SeriesId, empty_points
from sparkhu.storage.catalog import RunRecord, SeriesInfo
from sparkhu.storage.predictions import BLENDED_SCHEMA
from sparkhu.timeaxis import to_utc

DEFAULT_REQ_NUM = 50
"""Points ``featurePrediction`` returns when neither ``end`` nor ``reqNum`` is given."""
MIN_POLL_MS = 50
MAX_POLL_MS = 60_000
_ONE_US = timedelta(microseconds=1)


# --- arguments -------------------------------------------------------------------------


def parse_int(text: str | None, name: str) -> int | None:
    """A REST query parameter as an int; None stays None."""
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise InputError(f"{text!r} is not an integer", field=name) from exc


def check_range(start: datetime | None, end: datetime | None) -> None:
    """Reject an empty or reversed time range."""
    if start is not None and end is not None and end <= start:
        raise InputError(f"end {end.isoformat()} is not after start {start.isoformat()}", field="end")


def bound_limit(limit: int | None, max_points: int, name: str = "limit") -> int | None:
    """Validate a requested limit against ``max_points``; None means "up to max_points"."""
    if limit is None:
        return None
    if limit < 1:
        raise InputError(f"must be at least 1 (got {limit})", field=name)
    if limit > max_points:
        raise LimitExceeded(
            f"{name} {limit} exceeds the gateway's maximum of {max_points} points per query; "
            "ask for fewer points or raise gateway.max_points"
        )
    return limit


def later(moment: datetime, span: timedelta) -> datetime:
    """``moment + span``, or the last instant a datetime holds when that is past it.

    Arguments may be any valid date, year 9999 included: arithmetic on them must not overflow.

    >>> later(datetime(9999, 12, 31, 23, 59, tzinfo=UTC), timedelta(days=2)).isoformat()
    '9999-12-31T23:59:59.999999+00:00'
    """
    try:
        return moment + span
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)


def _take(table: pa.Table, limit: int | None, max_points: int, what: str) -> pa.Table:
    if limit is not None:
        return table.slice(0, limit)
    if table.num_rows > max_points:
        raise LimitExceeded(
            f"{what} holds more than {max_points} points (the gateway's maximum per query); "
            "narrow start/end or pass a limit"
        )
    return table


# --- series ----------------------------------------------------------------------------


def feature_series_id(db_name: str, table_name: str, feature_name: str) -> str:
    """The series id the original gateway's (dbName, tableName, featureName) names."""
    return f"{db_name.lower()}/{table_name}/{feature_name}"


def get_series(services: GatewayServices, series_id: str) -> SeriesInfo:
    """Catalog entry of a series; InputError for a malformed id, NotFoundError for an unknown one."""
    SeriesId.parse(series_id)
    try:
        return services.catalog.series(series_id)
    except NotFoundError as exc:
        raise NotFoundError(
            f"series {series_id!r} is not in the catalog; list known series with the `series` query "
            "or GET /api/series"
        ) from exc


def list_series(services: GatewayServices, prefix: str = "", limit: int = 100) -> list[SeriesInfo]:
    """Series whose id starts with ``prefix``, at most ``limit`` of them."""
    if limit < 1 or limit > 10_000:
        raise InputError(f"must be between 1 and 10000 (got {limit})", field="limit")
    return services.catalog.list_series(prefix=prefix, limit=limit)


def recent_runs(services: GatewayServices, kind: str | None = None, limit: int = 20) -> list[RunRecord]:
    """The newest run records (optionally of one kind)."""
    if limit < 1 or limit > 1_000:
        raise InputError(f"must be between 1 and 1000 (got {limit})", field="limit")
    return services.catalog.runs(kind=kind or None, limit=limit)


def series_runs(services: GatewayServices, series_id: str, limit: int = 10) -> list[RunRecord]:
    """The newest run records that concern one series."""
    runs = recent_runs(services, limit=1_000)
    return [run for run in runs if run.series_id == series_id][:limit]


# --- points ----------------------------------------------------------------------------


def actuals_location(services: GatewayServices, series_id: str) -> tuple[str, str]:
    """(zone, dataset) holding a series' actual points; the dataset may use {source}/{measurement}."""
    sid = SeriesId.parse(series_id)
    zone, dataset = services.actuals
    return zone, dataset.format(source=sid.source, measurement=sid.measurement, field=sid.field)


def read_points(
    services: GatewayServices,
    series_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> pa.Table:
    """Actual points (POINT_SCHEMA) of a series with start ≤ ts < end, oldest first, bounded."""
    info = get_series(services, series_id)
    check_range(start, end)
    max_points = services.settings.max_points
    limit = bound_limit(limit, max_points)
    zone, dataset = actuals_location(services, series_id)
    if end is None and start is not None and limit is not None and info.last_ts is not None:
        table = _read_first(services, zone, dataset, info, start, limit, to_utc(info.last_ts))
    else:
        table = services.lake.read(zone, dataset, series=[series_id], start=start, end=end)
    return _take(table, limit, max_points, f"series {series_id!r} in that range")


def _read_first(
    services: GatewayServices,
    zone: str,
    dataset: str,
    info: SeriesInfo,
    start: datetime,
    n: int,
    last: datetime,
) -> pa.Table:
    """The first ``n`` points from ``start``, reading widening windows instead of all history."""
    span = timedelta(seconds=(info.period_s or 60.0) * n * 1.5 + 1)
    while True:
        end = later(start, span)
        table = services.lake.read(zone, dataset, series=[info.series_id], start=start, end=end)
        if table.num_rows >= n or end > last or end == datetime.max.replace(tzinfo=UTC):
            return table.slice(0, n)
        span *= 4


def read_blended(
    services: GatewayServices,
    series_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> pa.Table:
    """Blended forecasts (BLENDED_SCHEMA) of a series with start ≤ target_ts < end, bounded."""
    return _read_forecasts(services, "blended", series_id, start, end, limit)


def read_raw(
    services: GatewayServices,
    series_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> pa.Table:
    """Raw forecasts (FORECAST_SCHEMA) whose target_ts is in [start, end), bounded."""
    return _read_forecasts(services, "raw", series_id, start, end, limit)


def _read_forecasts(
    services: GatewayServices,
    kind: Literal["blended", "raw"],
    series_id: str,
    start: datetime | None,
    end: datetime | None,
    limit: int | None,
) -> pa.Table:
    get_series(services, series_id)
    check_range(start, end)
    max_points = services.settings.max_points
    limit = bound_limit(limit, max_points)
    fetch = limit if limit is not None else max_points + 1
    reader = services.predictions.blended if kind == "blended" else services.predictions.raw
    table = reader(series_id, start=start, end=end, limit=fetch)
    return _take(table, limit, max_points, f"{kind} forecasts of {series_id!r} in that range")


@dataclass(frozen=True)
class FeatureWindow:
    """The answer of the original gateway's ``featurePrediction``."""

    series_id: str
    start: datetime
    end: datetime | None  # as given (exclusive), else the last feature point's timestamp
    feature: pa.Table  # POINT_SCHEMA
    prediction: pa.Table  # BLENDED_SCHEMA


def feature_prediction(
    services: GatewayServices,
    db_name: str,
    table_name: str,
    feature_name: str,
    start: datetime,
    end: datetime | None = None,
    req_num: int | None = None,
) -> FeatureWindow:
    """Actuals and blended forecasts of one feature, as the original gateway answered.

    With ``end``: points in [start, end) (at most ``req_num`` if given). Without: the first
    ``req_num`` points from ``start`` (50 when ``req_num`` is not given either), and ``end``
    becomes the last point's timestamp. The forecasts cover the same interval.
    """
    series_id = feature_series_id(db_name, table_name, feature_name)
    if end is None and req_num is None:
        req_num = DEFAULT_REQ_NUM
    bound_limit(req_num, services.settings.max_points, "reqNum")
    feature = read_points(services, series_id, start, end, req_num)
    if end is not None:
        prediction = read_blended(services, series_id, start, end, req_num)
    elif feature.num_rows:
        end = pc.max(feature.column("ts")).as_py()
        prediction = read_blended(services, series_id, start, later(end, _ONE_US), req_num)
    else:
        prediction = read_blended(services, series_id, start, None, req_num)
    return FeatureWindow(series_id, start, end, feature, prediction)


# --- mutations -------------------------------------------------------------------------


def set_blend_alpha(services: GatewayServices, series_id: str, alpha: float, actor: str) -> None:
    """Override the blending weight (alpha) of one series and write it to the audit log."""
    if not 0.0 < alpha <= 1.0:
        raise InputError(f"must be in (0, 1] (got {alpha})", field="alpha")
    get_series(services, series_id)
    services.predictions.set_alpha(series_id, alpha)
    services.catalog.audit(actor, "set_blend_alpha", series_id, {"alpha": alpha})


# --- live feeds (subscriptions) --------------------------------------------------------


def check_interval(interval_ms: int) -> float:
    """A subscription polling interval in seconds, within [MIN_POLL_MS, MAX_POLL_MS]."""
    if not MIN_POLL_MS <= interval_ms <= MAX_POLL_MS:
        raise InputError(
            f"must be between {MIN_POLL_MS} and {MAX_POLL_MS} ms (got {interval_ms})", field="intervalMs"
        )
    return interval_ms / 1000.0


class PredictionFeed:
    """Blended forecasts of one series that changed since the previous :meth:`poll`.

    New forecasts have an origin later than the newest one seen so far and target times
    after their origin, so only targets after the last seen origin are re-read, and of
    those only the rows updated since the last poll are returned. (Back-filled forecasts
    with older origins are not pushed; re-query for them.)
    """

    def __init__(self, services: GatewayServices, series_id: str) -> None:
        get_series(services, series_id)
        self._services = services
        self._series_id = series_id
        self._origin = services.predictions.latest_origin(series_id)
        self._seen: datetime | None = None
        if self._origin is not None:
            self._advance(self._changed())

    def _changed(self) -> pa.Table:
        store = self._services.predictions
        table = store.blended(self._series_id, start=self._origin, limit=self._services.settings.max_points)
        if self._seen is not None and table.num_rows:
            seen = pa.scalar(self._seen, BLENDED_SCHEMA.field("updated_at").type)
            table = table.filter(pc.greater(table.column("updated_at"), seen))
        return table

    def _advance(self, table: pa.Table) -> None:
        if table.num_rows:
            newest = pc.max(table.column("updated_at")).as_py()
            self._seen = newest if self._seen is None else max(self._seen, newest)

    def poll(self) -> pa.Table:
        """The rows changed since the last poll (BLENDED_SCHEMA, maybe empty)."""
        origin = self._services.predictions.latest_origin(self._series_id)
        if origin is None or origin == self._origin:
            return BLENDED_SCHEMA.empty_table()
        changed = self._changed()
        self._origin = origin
        self._advance(changed)
        return changed


class PointFeed:
    """Actual points of one series newer than the previous :meth:`poll` returned.

    Starts after ``since``, else after the catalog's last timestamp of the series, else now.
    """

    def __init__(self, services: GatewayServices, series_id: str, since: datetime | None = None) -> None:
        info = get_series(services, series_id)
        self._services = services
        self._series_id = series_id
        self._location = actuals_location(services, series_id)
        cursor = since or info.last_ts or datetime.now(UTC)
        self._cursor = to_utc(cursor)

    def poll(self) -> pa.Table:
        """Points after the cursor (POINT_SCHEMA, at most max_points), oldest first."""
        zone, dataset = self._location
        table = self._services.lake.read(
            zone, dataset, series=[self._series_id], start=later(self._cursor, _ONE_US)
        )
        if not table.num_rows:
            return empty_points()
        table = table.slice(0, self._services.settings.max_points)
        self._cursor = to_utc(pc.max(table.column("ts")).as_py())
        return table


def points_after(services: GatewayServices, series_id: str, since: datetime) -> pa.Table:
    """Actual points of a series after ``since`` (at most max_points), oldest first."""
    zone, dataset = actuals_location(services, series_id)
    table = services.lake.read(zone, dataset, series=[series_id], start=later(to_utc(since), _ONE_US))
    return table.slice(0, services.settings.max_points)


def points_after_table(table: pa.Table, since: datetime | None) -> pa.Table:
    """The rows of ``table`` (POINT_SCHEMA) with ts after ``since`` (all of them if None)."""
    if since is None or not table.num_rows:
        return table
    bound = pa.scalar(to_utc(since), table.schema.field("ts").type)
    return table.filter(pc.greater(table.column("ts"), bound))


def last_ts(table: pa.Table) -> datetime:
    """The newest ``ts`` of a non-empty POINT_SCHEMA table."""
    return to_utc(pc.max(table.column("ts")).as_py())


# --- formatting helpers ----------------------------------------------------------------


def nan_to_null(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Float column with NaN and ±infinity replaced by null (JSON and GraphQL have neither).

    >>> nan_to_null(pa.array([1.0, float("nan"), float("inf"), None])).to_pylist()
    [1.0, None, None, None]
    """
    return pc.if_else(pc.is_finite(column), column, pa.scalar(None, pa.float64()))


def iso_strings(column: pa.ChunkedArray | pa.Array) -> list[str]:
    """UTC timestamps as ISO 8601 strings ending in ``Z`` (whole seconds unless needed), vectorised."""
    us = column.cast(pa.timestamp("us")).cast(pa.int64()).to_numpy(zero_copy_only=False)
    unit: Literal["s", "us"] = "s" if not (us % 1_000_000).any() else "us"
    strings: list[str] = np.datetime_as_string(
        us.astype("datetime64[us]"), unit=unit, timezone="UTC"
    ).tolist()
    return strings


def datetimes(column: pa.ChunkedArray | pa.Array) -> list[datetime]:
    """UTC timestamps as aware datetimes (through numpy: far faster than ``to_pylist``)."""
    naive = column.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False).astype(object)
    return [value.replace(tzinfo=UTC) for value in naive]


def columns(table: pa.Table, names: Sequence[str]) -> dict[str, list[object]]:
    """Selected columns as Python lists (timestamps as ISO strings, NaN as None)."""
    out: dict[str, list[object]] = {}
    for name in names:
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            out[name] = list(iso_strings(column))
        elif pa.types.is_floating(column.type):
            out[name] = nan_to_null(column).to_pylist()
        else:
            out[name] = column.to_pylist()
    return out
