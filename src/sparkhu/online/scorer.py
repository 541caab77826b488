"""The online predictor's scorer: forecasts scored as their targets arrive, drift watched, in one transaction.

The predictor hands :class:`OnlineScorer` the points it absorbed (:meth:`~OnlineScorer.observe`,
in memory) and, in the transaction that stores its forecasts and checkpoint,
:meth:`~OnlineScorer.save` joins the points with the stored raw forecasts — one query per batch,
which sees the batch's own forecasts too — and writes the scores (:func:`sparkhu.online.scoring.score`;
catalog table ``online_scores``), feeds the drift detectors (:mod:`sparkhu.online.drift`), writes
their events (``drift_events``) and the scorer's state (the last values per series behind the
scale, the detectors, the newest point) as entries of ``online_state`` under
``scoring:<group>/<topic>``. Everything is computed on a copy of the state, kept once that
transaction committed (:meth:`~OnlineScorer.committed`; a failed write is recomputed from the
same state when the predictor retries it), and points not newer than a series' newest are
skipped: a batch delivered again after a crash is never scored twice nor fed twice to a detector.

>>> import tempfile
>>> from sparkhu.online.scoring import scores
>>> from sparkhu.series import points
>>> from sparkhu.storage.catalog import Catalog
>>> from sparkhu.storage.predictions import FORECAST_SCHEMA, Checkpoint, PredictionStore
>>> forecast = pa.table({"series_id": ["a/b/c"], "origin_ts": [0], "target_ts": [60], "step": [1],
...                      "value": [10.0], "model": ["ses"]})
>>> with tempfile.TemporaryDirectory() as tmp, Catalog(f"sqlite:///{tmp}/c.db") as catalog:
...     store = PredictionStore(catalog)
...     _ = store.write(forecast)
...     scorer = OnlineScorer(catalog, "online/points")
...     scorer.observe(points("a/b/c", [0, 60], [9.0, 12.5]))  # what a round absorbed
...     _ = store.write(FORECAST_SCHEMA.empty_table(), checkpoint=Checkpoint("o", {}, scorer.save))
...     scorer.committed()
...     errors = scores(catalog, "a/b/c").column("error").to_pylist()
>>> errors, scorer.stats().scored
([2.5], 1)
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sparkhu.errors import InputError
from sparkhu.online.drift import DriftWatch, Kind
from sparkhu.online.scoring import micros, point_scales, score, strings
from sparkhu.storage.catalog import schema
from sparkhu.storage.catalog.engine import dialect_insert
from sparkhu.timeaxis import now_us

log = logging.getLogger(__name__)

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
            "series_id": strings(points.column("series_id")),
            "ts": micros(points.column("ts")),
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
    rows: list[Any] = []
    for at in range(0, len(triples), _SERIES_PER_QUERY):
        chunk = triples[at : at + _SERIES_PER_QUERY]
        # text, as PredictionStore._existing: hundreds of expression objects cost more than the query
        terms = " OR ".join(
            f"(series_id = :s{i} AND target_ts BETWEEN :a{i} AND :b{i})" for i in range(len(chunk))
        )
        params = {}
        for i, (sid, lo, hi) in enumerate(chunk):
            params.update({f"s{i}": sid, f"a{i}": lo, f"b{i}": hi})
        query = sa.text(
            "SELECT series_id, model, origin_ts, target_ts, step, value, lower, upper "
            f"FROM {schema.forecasts_raw.name} WHERE {terms}"
        )
        rows.extend(conn.execute(query, params).all())
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
