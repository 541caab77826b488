"""Online evaluation: every forecast scored when its target arrives, and drift watched on the way.

:func:`score` is the evaluation itself, a pure function: the raw forecasts whose ``target_ts``
equals a point's ``ts`` (one Arrow join) give, per series, model, origin and horizon step, the
error ``actual − forecast``, whether the interval covered the actual, and the series' ``scale``
(its in-sample seasonal-naive MAE over the window, naive-1 without a season that fits in the
window: MASE's denominator).

:class:`OnlineScorer` runs it inside the online predictor's round. The predictor hands it the
points it absorbed (:meth:`~OnlineScorer.observe`, in memory) and, in the transaction that stores
its forecasts and checkpoint, :meth:`~OnlineScorer.save` joins the points with the stored raw
forecasts — one query per batch, which sees the batch's own forecasts too — writes the scores
(catalog table ``online_scores``), feeds the drift detectors (:mod:`sparkhu.online.drift`),
writes their events (``drift_events``) and the scorer's state (windows for the scale, detectors,
the newest point per series) as entries of ``online_state``. Everything is computed on a copy of
the state, kept only once that transaction committed (a failed write is recomputed from the same
state when the predictor retries it), and points not newer than a series' newest are skipped:
a batch delivered again after a crash is never scored twice nor fed twice to a detector.

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

import logging
import math
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sparkhu.errors import InputError
from sparkhu.online.drift import DriftWatch, Kind
from sparkhu.series import is_series_id
from sparkhu.storage.catalog import schema
from sparkhu.storage.catalog.engine import dialect_insert, read_tx
from sparkhu.timeaxis import from_us, now_us, to_us

log = logging.getLogger(__name__)

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
_SERIES_PER_QUERY = 300
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
            "series_id": _strings(points.column("series_id")),
            "target_ts": _micros(points.column("ts")),
            "actual": points.column("value").cast(pa.float64()),
            "scale": scale_in.cast(pa.float64()),
        }
    )
    names = ("series_id", "model", "origin_ts", "target_ts", "step", "value", "lower", "upper")
    columns = {n: forecasts.column(n) if n in forecasts.column_names else None for n in names}
    table = pa.table(
        {
            "series_id": _strings(forecasts.column("series_id")),
            "model": _strings(forecasts.column("model")),
            "origin_ts": _micros(forecasts.column("origin_ts")),
            "target_ts": _micros(forecasts.column("target_ts")),
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


class _State:
    """What the scorer keeps per series: the last ``width`` values (a ring), the newest point, detectors."""

    def __init__(self, width: int, kinds: dict[str, Kind] | None) -> None:
        self.width = width
        self.index: dict[str, int] = {}
        self.ring = np.zeros((0, width))
        self.count = np.zeros(0, dtype=np.int64)
        self.pos = np.zeros(0, dtype=np.int64)
        self.last_ts = np.zeros(0, dtype=np.int64)
        self.last_value = np.zeros(0)
        self.watch = DriftWatch(kinds)

    def copy(self) -> _State:
        twin = object.__new__(_State)
        twin.width, twin.index = self.width, dict(self.index)
        twin.ring, twin.count, twin.pos = self.ring.copy(), self.count.copy(), self.pos.copy()
        twin.last_ts, twin.last_value = self.last_ts.copy(), self.last_value.copy()
        twin.watch = self.watch.copy()
        return twin

    def rows(self, names: Sequence[str]) -> np.ndarray:
        """Rows of ``names``, new series added (no point yet: newest ts before any)."""
        for name in names:
            if name not in self.index:
                self.index[name] = len(self.index)
        grow = len(self.index) - self.count.size
        if grow > 0:
            extra = max(grow, self.count.size // 2)
            self.ring = np.vstack([self.ring, np.zeros((extra, self.width))])
            self.count = np.r_[self.count, np.zeros(extra, np.int64)]
            self.pos = np.r_[self.pos, np.zeros(extra, np.int64)]
            self.last_ts = np.r_[self.last_ts, np.full(extra, np.iinfo(np.int64).min)]
            self.last_value = np.r_[self.last_value, np.full(extra, np.nan)]
        return np.fromiter((self.index[n] for n in names), dtype=np.int64, count=len(names))

    def windows(self, rows: np.ndarray) -> np.ndarray:
        """The rings of ``rows`` as windows, oldest first."""
        order = (self.pos[rows][:, None] + np.arange(self.width)[None, :]) % self.width
        return np.take_along_axis(self.ring[rows], order, axis=1)

    def push(self, rows: np.ndarray, values: np.ndarray, rank: np.ndarray, sizes: np.ndarray) -> None:
        """Append points (``rank``: position in its series' run, ``sizes``: run length per point)."""
        keep = rank >= sizes - self.width  # a run longer than the window: its last ``width`` points
        r, v, k = rows[keep], values[keep], rank[keep] - np.maximum(sizes[keep] - self.width, 0)
        self.ring[r, (self.pos[r] + k) % self.width] = v
        last = rank == sizes - 1
        lr, added = rows[last], np.minimum(sizes[last], self.width)
        self.pos[lr] = (self.pos[lr] + added) % self.width
        self.count[lr] = np.minimum(self.count[lr] + sizes[last], self.width)

    def dump(self, series_id: str) -> bytes:
        row = self.index[series_id]
        kept = (
            self.windows(np.array([row]))[0],
            int(self.count[row]),
            int(self.last_ts[row]),
            float(self.last_value[row]),
            self.watch.series_state(series_id),
        )
        return pickle.dumps(kept, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, series_id: str, blob: bytes) -> None:
        # written by this class into the platform's own catalog, as trusted as the predictor's checkpoint
        window, count, last_ts, last_value, detectors = pickle.loads(blob)
        row = int(self.rows([series_id])[0])
        width = min(self.width, len(window))
        self.ring[row] = 0.0
        self.ring[row, self.width - width :] = window[len(window) - width :]
        self.pos[row], self.count[row] = 0, min(count, width)
        self.last_ts[row], self.last_value[row] = last_ts, last_value
        self.watch.load_series(detectors)


@dataclass(frozen=True)
class ScoringStats:
    """Counters of an :class:`OnlineScorer` (of committed batches)."""

    scored: int
    drift_events: int
    series: int


class OnlineScorer:
    """Scores and drift of one online predictor; see the module docstring.

    ``engine``: the catalog's (a :class:`~sparkhu.storage.catalog.Catalog` is accepted). ``owner``:
    the name its state is kept under (``scoring:<group>/<topic>``, one per predictor). ``window``:
    values per series behind the scale; ``season_length``: the scale's lag when the window holds a
    season and one more point, else 1. ``kinds``: drift kinds and their settings (default
    :data:`~sparkhu.online.drift.KINDS`).
    """

    def __init__(
        self,
        engine: Any,
        owner: str,
        *,
        window: int = 60,
        season_length: int | None = None,
        kinds: dict[str, Kind] | None = None,
    ) -> None:
        self.engine: Engine = getattr(engine, "engine", engine)
        if not isinstance(self.engine, Engine):
            raise InputError(f"OnlineScorer needs the catalog's engine, got {type(engine).__name__}")
        if not owner:
            raise InputError("a scorer needs an owner name", field="owner")
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise InputError(f"must be an integer >= 2 points, got {window!r}", field="window")
        self.owner = f"scoring:{owner}"
        self.season = season_length if season_length is not None and 1 <= season_length < window else 1
        self.kinds = kinds
        self._state = _State(window, kinds)
        self._staged: _State | None = None
        self._points: list[pa.Table] = []
        self._loaded = False
        self._counts = [0, 0]
        self._pending_counts = (0, 0)

    def committed(self) -> None:
        """The transaction of the last :meth:`save` committed: its state is the scorer's from now on."""
        if self._staged is not None:
            self._state, self._staged = self._staged, None
            self._counts = [a + b for a, b in zip(self._counts, self._pending_counts, strict=True)]
            self._points = []

    def observe(self, points: pa.Table) -> None:
        """The points a round absorbed (``series_id``, ``ts``, ``value``): kept for :meth:`save`.

        A round is prepared only once the round before it is stored, so a save not yet known
        committed is (:meth:`committed`).
        """
        self.committed()
        self._points = [points.select(["series_id", "ts", "value"])] if points.num_rows else []

    def save(self, conn: Connection) -> None:
        """Score the observed points, feed the detectors and write it all through ``conn``.

        Called in the predictor's write transaction, after its forecasts were inserted.
        """
        if not self._loaded:
            self._load(conn)
        self._staged, self._pending_counts = None, (0, 0)
        if not self._points:
            return
        state = self._staged = self._state.copy()
        new = _fresh(pa.concat_tables(self._points), state)
        if not new.num_rows:
            return
        sids = new.column("series_id").to_pylist()
        ts = new.column("ts").to_numpy()
        values = new.column("value").to_numpy()
        rows = state.rows(sids)
        starts = np.r_[True, rows[1:] != rows[:-1]]
        first = np.flatnonzero(starts)
        run = np.cumsum(starts) - 1
        sizes = np.diff(np.r_[first, rows.size])[run]
        rank = np.arange(rows.size) - first[run]
        touched = rows[first]
        run_sizes = np.diff(np.r_[first, rows.size])
        scale = point_scales(state.windows(touched), state.count[touched], values, run_sizes, self.season)
        previous = np.r_[np.nan, values[:-1]]
        previous[first] = state.last_value[touched]
        events = [state.watch.observe_points(sids, ts, values, previous)]
        state.push(rows, values, rank, sizes)
        state.last_ts[touched] = ts[first + np.diff(np.r_[first, rows.size]) - 1]
        state.last_value[touched] = values[first + np.diff(np.r_[first, rows.size]) - 1]
        names = [sids[i] for i in first]
        scored = score(new.append_column("scale", pa.array(scale)), _stored_forecasts(conn, new))
        if scored.num_rows:
            conn.execute(
                dialect_insert(conn, schema.online_scores).on_conflict_do_nothing(),
                _score_rows(scored),
            )
            one = scored.filter(pc.equal(scored.column("step"), 1))
            if one.num_rows:
                one = one.sort_by(
                    [("series_id", "ascending"), ("model", "ascending"), ("target_ts", "ascending")]
                )
                x = one.column("abs_error").to_numpy() / one.column("scale").to_numpy(zero_copy_only=False)
                events.append(
                    state.watch.observe_errors(
                        one.column("series_id").to_pylist(),
                        one.column("model").to_pylist(),
                        one.column("target_ts").cast(pa.int64()).to_numpy(),
                        x.astype(np.float64),
                    )
                )
        found = [e for e in events if len(e)]
        at = now_us()
        event_rows = [row for e in found for row in e.rows(at)]
        if event_rows:
            conn.execute(dialect_insert(conn, schema.drift_events).on_conflict_do_nothing(), event_rows)
            for e in found:
                for sid, kind, t in zip(e.series_id, e.kind, e.ts.tolist(), strict=True):
                    log.info("drift on %s: %s at %d µs", sid, kind, t)
        _save_entries(conn, self.owner, {sid: state.dump(sid) for sid in names}, at)
        self._pending_counts = (scored.num_rows, len(event_rows))

    def stats(self) -> ScoringStats:
        """Scores and drift events written so far by this scorer (of rounds known committed)."""
        return ScoringStats(self._counts[0], self._counts[1], len(self._state.index))

    def _load(self, conn: Connection) -> None:
        t = schema.online_state
        entries = conn.execute(sa.select(t.c.key, t.c.value).where(t.c.owner == self.owner)).all()
        for key, blob in entries:
            self._state.load(key, bytes(blob))
        self._loaded = True


def _fresh(points: pa.Table, state: _State) -> pa.Table:
    """Points by (series, ts), one per key (the last delivered), newer than their series' newest."""
    table = pa.table(
        {
            "series_id": _strings(points.column("series_id")),
            "ts": _micros(points.column("ts")),
            "value": points.column("value").cast(pa.float64()),
            "_at": np.arange(points.num_rows),
        }
    ).sort_by([("series_id", "ascending"), ("ts", "ascending"), ("_at", "descending")])
    sid = table.column("series_id").combine_chunks()
    ts = table.column("ts").to_numpy()
    first_of_key = np.ones(table.num_rows, dtype=bool)
    if table.num_rows > 1:
        same = pc.equal(sid[1:], sid[:-1]).to_numpy(zero_copy_only=False) & (ts[1:] == ts[:-1])
        first_of_key[1:] = ~same
    table = table.filter(pa.array(first_of_key))
    names = table.column("series_id").to_pylist()
    known = np.fromiter((state.index.get(n, -1) for n in names), dtype=np.int64, count=len(names))
    newest = np.full(len(names), np.iinfo(np.int64).min)
    hit = known >= 0
    newest[hit] = state.last_ts[known[hit]]
    return table.filter(pa.array(table.column("ts").to_numpy() > newest)).drop_columns(["_at"])


def _stored_forecasts(conn: Connection, new: pa.Table) -> pa.Table:
    """Raw forecasts targeting each series' range of ``new`` timestamps (one key-prefix range per series)."""
    ranges = new.group_by("series_id").aggregate([("ts", "min"), ("ts", "max")])
    triples = list(zip(*(ranges.column(i).to_pylist() for i in range(3)), strict=True))
    raw = schema.forecasts_raw
    wanted = (
        raw.c.series_id,
        raw.c.model,
        raw.c.origin_ts,
        raw.c.target_ts,
        raw.c.step,
        raw.c.value,
        raw.c.lower,
        raw.c.upper,
    )
    rows: list[Any] = []
    for at in range(0, len(triples), _SERIES_PER_QUERY):
        chunk = triples[at : at + _SERIES_PER_QUERY]
        where = sa.or_(
            *(sa.and_(raw.c.series_id == sid, raw.c.target_ts.between(lo, hi)) for sid, lo, hi in chunk)
        )
        rows.extend(conn.execute(sa.select(*wanted).where(where)).all())
    names = ("series_id", "model", "origin_ts", "target_ts", "step", "value", "lower", "upper")
    types = (
        pa.string(),
        pa.string(),
        pa.int64(),
        pa.int64(),
        pa.int32(),
        pa.float64(),
        pa.float64(),
        pa.float64(),
    )
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
    return pa.table([pa.array(c, t) for c, t in zip(columns, types, strict=True)], names=list(names))


def _score_rows(scored: pa.Table) -> list[dict[str, Any]]:
    table = scored.select(list(_STORED))
    table = table.set_column(2, "origin_ts", table.column("origin_ts").cast(pa.int64()))
    table = table.set_column(3, "target_ts", table.column("target_ts").cast(pa.int64()))
    return table.to_pylist()


def _save_entries(conn: Connection, owner: str, entries: Mapping[str, bytes], at: int) -> None:
    if not entries:
        return
    t = schema.online_state
    stmt = dialect_insert(conn, t)
    stmt = stmt.on_conflict_do_update(
        index_elements=["owner", "key"], set_={"value": stmt.excluded.value, "updated_at": at}
    )
    conn.execute(stmt, [{"owner": owner, "key": k, "value": v, "updated_at": at} for k, v in entries.items()])


def _strings(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column.cast(pa.string())


def _micros(column: pa.ChunkedArray | pa.Array) -> pa.Array:
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
