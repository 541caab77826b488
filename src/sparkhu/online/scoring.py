"""Online evaluation: every forecast scored when its target arrives, and drift watched on the way.

:func:`score` is the evaluation itself, a pure function: the raw forecasts whose ``target_ts``
equals a point's ``ts`` (one Arrow join) give, per series, model, origin and horizon step, the
error ``actual − forecast``, whether the interval covered the actual, and the series' ``scale``
(its in-sample seasonal-naive MAE over the window, naive-1 without a season that fits in the
window: MASE's denominator).

The online predictor runs it as its forecasts' targets arrive, in the transaction of its
forecasts (:class:`sparkhu.online.scorer.OnlineScorer`), into the catalog table ``online_scores``.

The read side — :func:`scores`, :func:`summary`, :func:`live_mae` — answers per series, model,
step and time range, bounded; :func:`sparkhu.online.drift.drift_events` lists the events. They
are what the gateway (``onlineScores``, ``driftEvents``), the CLI (``sparkhu scores``,
``sparkhu drift``) and the controller read.

>>> from sparkhu.series import points
>>> forecasts = pa.table({"series_id": ["a/b/c"] * 2, "model": ["ses"] * 2, "origin_ts": [0, 0],
...     "target_ts": [60, 120], "step": [1, 2], "value": [10.0, 11.0], "lower": [9.0, 9.0],
...     "upper": [11.0, 11.5]})
>>> actuals = points("a/b/c", [60, 120], [10.5, 12.0]).append_column("scale", pa.array([2.0, 2.0]))
>>> scored = score(actuals, forecasts)
>>> [scored.column(c).to_pylist() for c in ("step", "error", "covered", "scale")]
[[1, 2], [0.5, 1.0], [True, False], [2.0, 2.0]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sparkhu.errors import InputError
from sparkhu.series import is_series_id
from sparkhu.storage.catalog import schema
from sparkhu.storage.catalog.engine import read_tx
from sparkhu.timeaxis import from_us, to_us

TS_TYPE = pa.timestamp("us", tz="UTC")
SCORE_SCHEMA = pa.schema(
    [
        pa.field("series_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("origin_ts", TS_TYPE, nullable=False),
        pa.field("target_ts", TS_TYPE, nullable=False),
        pa.field("step", pa.int32(), nullable=False),
        pa.field("actual", pa.float64(), nullable=False),
        pa.field("forecast", pa.float64(), nullable=False),
        pa.field("error", pa.float64(), nullable=False),
        pa.field("abs_error", pa.float64(), nullable=False),
        pa.field("sq_error", pa.float64(), nullable=False),
        pa.field("scale", pa.float64()),
        pa.field("covered", pa.bool_()),
    ]
)
"""One scored forecast: ``error = actual − forecast``; ``scale`` MASE's denominator (null: a flat
window); ``covered`` whether ``lower ≤ actual ≤ upper`` (null: no interval)."""

MAX_ROWS = 100_000
"""The most rows one read returns."""
_STORED = (
    "series_id",
    "model",
    "origin_ts",
    "target_ts",
    "step",
    "actual",
    "forecast",
    "error",
    "scale",
    "covered",
)


def score(points: pa.Table, forecasts: pa.Table) -> pa.Table:
    """Score ``forecasts`` (raw, as stored) against ``points`` (``series_id``, ``ts``, ``value``).

    One inner join on (series, ``target_ts`` = ``ts``); :data:`SCORE_SCHEMA` rows sorted by
    series, model, target and origin. A ``scale`` column of ``points`` is MASE's scale at each
    point (missing, zero or NaN: null).
    """
    scale_in = points.column("scale") if "scale" in points.column_names else pa.nulls(points.num_rows)
    actual = pa.table(
        {
            "series_id": strings(points.column("series_id")),
            "target_ts": micros(points.column("ts")),
            "actual": points.column("value").cast(pa.float64()),
            "scale": scale_in.cast(pa.float64()),
        }
    )
    names = ("series_id", "model", "origin_ts", "target_ts", "step", "value", "lower", "upper")
    columns = {n: forecasts.column(n) if n in forecasts.column_names else None for n in names}
    table = pa.table(
        {
            "series_id": strings(forecasts.column("series_id")),
            "model": strings(forecasts.column("model")),
            "origin_ts": micros(forecasts.column("origin_ts")),
            "target_ts": micros(forecasts.column("target_ts")),
            "step": forecasts.column("step").cast(pa.int32()),
            "forecast": forecasts.column("value").cast(pa.float64()),
            "lower": (columns["lower"] or pa.nulls(forecasts.num_rows)).cast(pa.float64()),
            "upper": (columns["upper"] or pa.nulls(forecasts.num_rows)).cast(pa.float64()),
        }
    )
    joined = table.join(actual, keys=["series_id", "target_ts"], join_type="inner")
    joined = joined.sort_by([(c, "ascending") for c in ("series_id", "model", "target_ts", "origin_ts")])
    y = joined.column("actual").to_numpy()
    yhat = joined.column("forecast").to_numpy()
    error = y - yhat
    lower, upper = joined.column("lower"), joined.column("upper")
    covered = pc.and_kleene(
        pc.less_equal(lower, joined.column("actual")), pc.less_equal(joined.column("actual"), upper)
    )
    scale = joined.column("scale").to_numpy(zero_copy_only=False).astype(np.float64)
    scale[~(scale > 0)] = np.nan
    return pa.Table.from_arrays(
        [
            joined.column("series_id"),
            joined.column("model"),
            joined.column("origin_ts").cast(TS_TYPE),
            joined.column("target_ts").cast(TS_TYPE),
            joined.column("step"),
            joined.column("actual"),
            joined.column("forecast"),
            pa.array(error),
            pa.array(np.abs(error)),
            pa.array(error * error),
            pa.array(scale, mask=np.isnan(scale)),
            covered,
        ],
        schema=SCORE_SCHEMA,
    )


def point_scales(
    windows: np.ndarray, counts: np.ndarray, new: np.ndarray, sizes: np.ndarray, season: int
) -> np.ndarray:
    """MASE's scale at each new point: mean |y_t − y_{t−season}| over the ``width`` values before it.

    ``windows``: one row per series, its last values before the batch, oldest first (the last
    ``counts[k]`` valid); ``new``: the batch's values, series after series (``sizes[k]`` each, in
    the rows' order). Cumulative sums over all series at once; NaN where no pair is in the window.
    The scale of a point does not depend on how the stream was cut into batches.

    >>> window, new = np.array([[0.0, 1.0, 3.0]]), np.array([6.0, 6.0])
    >>> point_scales(window, np.array([3]), new, np.array([2]), season=1).tolist()
    [1.5, 2.5]
    """
    k, width = windows.shape
    block = width + sizes
    starts = np.r_[0, np.cumsum(block)[:-1]]
    total = int(block.sum())
    values = np.full(total, np.nan)
    owner = np.repeat(np.arange(k), block)
    at_ring = (starts[:, None] + np.arange(width)[None, :]).ravel()
    ring_ok = (np.arange(width)[None, :] >= (width - counts)[:, None]).ravel()
    values[at_ring[ring_ok]] = windows.ravel()[ring_ok]
    run_start = np.r_[0, np.cumsum(sizes)[:-1]]
    at_new = np.repeat(starts + width, sizes) + (np.arange(new.size) - np.repeat(run_start, sizes))
    values[at_new] = new
    if season >= width:
        return np.full(new.size, np.nan)
    diff = np.zeros(total)
    pair = np.zeros(total)
    later = np.arange(season, total)
    same = owner[later] == owner[later - season]
    d = np.abs(values[later] - values[later - season])
    ok = same & np.isfinite(d)
    diff[later[ok]], pair[later[ok]] = d[ok], 1.0
    sums, pairs = np.r_[0.0, np.cumsum(diff)], np.r_[0.0, np.cumsum(pair)]
    lo = at_new - width + season
    n = pairs[at_new] - pairs[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[at_new] - sums[lo]) / np.maximum(n, 1.0), np.nan)


def strings(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column of series ids or labels as plain strings (dictionaries decoded)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column.cast(pa.string())


def micros(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column of timestamps (or integers) as int64 microseconds."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("us", tz=column.type.tz))
    return column.cast(pa.int64())


# ---------------------------------------------------------------------- the read side


@dataclass(frozen=True)
class ScoreSummary:
    """Aggregates of the scores of one series, model and step (``step`` None: all steps together)."""

    series_id: str
    model: str
    step: int | None
    count: int
    mae: float
    rmse: float
    mase: float | None
    """Mean of |error| / scale over the scores with a scale; None when none has one."""
    coverage: float | None
    """Share of the scores with an interval that it covered; None without intervals."""
    first_target: datetime
    last_target: datetime


def check_query(
    series_id: str | None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    step: int | None = None,
    limit: int | None = None,
) -> None:
    """:class:`InputError` naming the first malformed argument of a read (the CLI and gateway's one check).

    >>> check_query("a/b/c", step=0)
    Traceback (most recent call last):
    ...
    sparkhu.errors.InputError: step: must be a horizon step >= 1, got 0
    """
    if series_id is not None and not is_series_id(series_id):
        raise InputError(f"{series_id!r} is not a series id (source/measurement/field)", field="series_id")
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and not isinstance(moment, datetime):
            raise InputError(f"must be a datetime, got {moment!r}", field=name)
    if since is not None and until is not None and to_us(since) >= to_us(until):
        raise InputError(f"{since.isoformat()} is not before until {until.isoformat()}", field="since")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 1):
        raise InputError(f"must be a horizon step >= 1, got {step!r}", field="step")
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_ROWS
    ):
        raise InputError(f"must be an integer in 1..{MAX_ROWS}, got {limit!r}", field="limit")


def _where(
    series_id: str, model: str | None, step: int | None, since: datetime | None, until: datetime | None
) -> list[Any]:
    t = schema.online_scores
    conds: list[Any] = [t.c.series_id == series_id]
    if model is not None:
        conds.append(t.c.model == model)
    if step is not None:
        conds.append(t.c.step == step)
    if since is not None:
        conds.append(t.c.target_ts >= to_us(since))
    if until is not None:
        conds.append(t.c.target_ts < to_us(until))
    return conds


def scores(
    source: Any,
    series_id: str,
    *,
    model: str | None = None,
    step: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 10_000,
) -> pa.Table:
    """Scores (:data:`SCORE_SCHEMA`) of a series, targets in [since, until): the newest ``limit``, by target.

    ``source``: the catalog or its engine; ``model``/``step`` narrow to one model label / step.
    """
    check_query(series_id, since=since, until=until, step=step, limit=limit)
    t = schema.online_scores
    query = (
        sa.select(*(t.c[name] for name in _STORED))
        .where(*_where(series_id, model, step, since, until))
        .order_by(t.c.target_ts.desc(), t.c.model, t.c.origin_ts.desc())
        .limit(limit)
    )
    with read_tx(_engine(source), f"reading the online scores of {series_id!r}") as conn:
        rows = conn.execute(query).all()[::-1]
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in _STORED]
    data = dict(zip(_STORED, columns, strict=True))
    error = np.asarray(data["error"], dtype=np.float64)
    arrays = {
        "series_id": pa.array(data["series_id"], pa.string()),
        "model": pa.array(data["model"], pa.string()),
        "origin_ts": pa.array(data["origin_ts"], pa.int64()).cast(TS_TYPE),
        "target_ts": pa.array(data["target_ts"], pa.int64()).cast(TS_TYPE),
        "step": pa.array(data["step"], pa.int32()),
        "actual": pa.array(data["actual"], pa.float64()),
        "forecast": pa.array(data["forecast"], pa.float64()),
        "error": pa.array(error),
        "abs_error": pa.array(np.abs(error)),
        "sq_error": pa.array(error * error),
        "scale": pa.array(data["scale"], pa.float64()),
        "covered": pa.array(data["covered"], pa.bool_()),
    }
    return pa.Table.from_pydict(arrays, schema=SCORE_SCHEMA)


def summary(
    source: Any,
    series_id: str,
    *,
    model: str | None = None,
    step: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    by_step: bool = True,
) -> list[ScoreSummary]:
    """MAE, RMSE, MASE and interval coverage per model (and per step with ``by_step``), in SQL.

    >>> import tempfile
    >>> from sparkhu.storage.catalog import Catalog
    >>> with tempfile.TemporaryDirectory() as tmp, Catalog(f"sqlite:///{tmp}/c.db") as catalog:
    ...     summary(catalog, "a/b/c")
    []
    """
    check_query(series_id, since=since, until=until, step=step)
    t = schema.online_scores
    err = t.c.error
    covered = sa.case((t.c.covered.is_(None), None), (t.c.covered, 1.0), else_=0.0)
    scaled = sa.case((t.c.scale > 0, sa.func.abs(err) / t.c.scale), else_=None)
    keys = [t.c.model, t.c.step] if by_step else [t.c.model]
    query = (
        sa.select(
            *keys,
            sa.func.count(),
            sa.func.avg(sa.func.abs(err)),
            sa.func.avg(err * err),
            sa.func.avg(scaled),
            sa.func.avg(covered),
            sa.func.min(t.c.target_ts),
            sa.func.max(t.c.target_ts),
        )
        .where(*_where(series_id, model, step, since, until))
        .group_by(*keys)
        .order_by(*keys)
    )
    with read_tx(_engine(source), f"summarising the online scores of {series_id!r}") as conn:
        rows = conn.execute(query).all()
    out = []
    for row in rows:
        values = list(row)
        label, at = values[0], (int(values[1]) if by_step else None)
        count, mae, mse, mase, coverage, lo, hi = values[2:] if by_step else values[1:]
        out.append(
            ScoreSummary(
                series_id,
                label,
                at,
                int(count),
                float(mae),
                math.sqrt(float(mse)),
                None if mase is None else float(mase),
                None if coverage is None else float(coverage),
                _as_time(lo),
                _as_time(hi),
            )
        )
    return out


def live_mae(
    source: Any, series_id: str, model: str, *, last: int = 100, step: int | None = 1
) -> float | None:
    """MAE of ``model`` on ``series_id`` over its last ``last`` scored targets (``step`` None: every step).

    None when the model has no score on the series. The controller compares champion and challenger with it.
    """
    check_query(series_id, step=step, limit=last)
    t = schema.online_scores
    recent = (
        sa.select(t.c.error)
        .where(*_where(series_id, model, step, None, None))
        .order_by(t.c.target_ts.desc(), t.c.origin_ts.desc())
        .limit(last)
        .subquery()
    )
    query = sa.select(sa.func.avg(sa.func.abs(recent.c.error)))
    with read_tx(_engine(source), f"reading the live error of {model!r} on {series_id!r}") as conn:
        value = conn.execute(query).scalar()
    return None if value is None else float(value)


def _as_time(micros: int) -> datetime:
    return from_us(int(micros))


def _engine(source: Any) -> Engine:
    engine = getattr(source, "engine", source)
    if not isinstance(engine, Engine):
        raise InputError(f"needs the catalog or its engine, got {type(source).__name__}", field="source")
    return engine
