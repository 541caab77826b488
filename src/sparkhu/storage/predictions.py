"""The prediction store: raw forecasts and their blended value per target time.

Raw forecasts keep everything a model said: (series_id, origin_ts, target_ts, step, value,
lower, upper, model). Blended forecasts keep one value per (series_id, target_ts), updated
by simple exponential smoothing each time a new forecast for that target arrives::

    S = alpha * y + (1 - alpha) * S_prev   if a blended value exists, else S = y

(alpha = 0.6 by default, per series overridable). Stored in the catalog's database (SQLite or
PostgreSQL) through SQLAlchemy Core; writing the same forecast (same series, origin,
target, model) twice is a no-op, so re-runs do not blend twice.

``lower`` and ``upper`` are blended the same way when a forecast has them (a missing bound
leaves the blended one as it was); ``updates`` counts the forecasts folded into a blended
value (1 after the first).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sparkhu.errors import InputError
from sparkhu.series import is_series_id
from sparkhu.storage.catalog import schema
from sparkhu.storage.catalog.engine import (
    dialect_insert,
    is_sqlite,
    read_tx,
    write_tx,
)
from sparkhu.timeaxis import from_us, now_us, to_us

FORECAST_SCHEMA = pa.schema(
    [
        pa.field("series_id", pa.string(), nullable=False),
        pa.field("origin_ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("target_ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("step", pa.int32(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("lower", pa.float64()),
        pa.field("upper", pa.float64()),
        pa.field("model", pa.string(), nullable=False),
    ]
)

BLENDED_SCHEMA = pa.schema(
    [
        pa.field("series_id", pa.string(), nullable=False),
        pa.field("target_ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("lower", pa.float64()),
        pa.field("upper", pa.float64()),
        pa.field("updates", pa.int32(), nullable=False),
        pa.field("updated_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


class Checkpoint(NamedTuple):
    """A writer's state saved with its forecasts: opaque ``entries`` by key, under ``owner``.

    Entries of an earlier checkpoint of the same owner whose keys are not given are kept (a
    writer saves only what changed). ``also``: more of the writer's own writes, made through the
    transaction's connection after the forecasts (e.g. their scores, :mod:`sparkhu.online.scoring`).
    """

    owner: str
    entries: Mapping[str, bytes]
    also: Callable[[Connection], None] | None = None


DEFAULT_ALPHA = 0.6
_TS = ("origin_ts", "target_ts")
_SERIES_PER_QUERY = 300  # series per "existing blended values" query (3 bound parameters each)


class PredictionStore:
    """Raw and blended forecasts in the catalog database.

    >>> import tempfile
    >>> from sparkhu.storage.catalog import Catalog
    >>> def forecast(origin, value):
    ...     return pa.table({"series_id": ["a/b/c"], "origin_ts": [origin], "target_ts": [100],
    ...                      "step": [1], "value": [value], "model": ["ses"]})
    >>> with tempfile.TemporaryDirectory() as tmp, Catalog(f"sqlite:///{tmp}/c.db") as cat:
    ...     store = PredictionStore(cat.engine)
    ...     new = [store.write(forecast(o, v)) for o, v in ((1, 10.0), (2, 20.0), (2, 20.0))]
    ...     blended = store.blended("a/b/c").select(["value", "updates"]).to_pylist()
    >>> new, blended
    ([1, 1, 0], [{'value': 16.0, 'updates': 2}])
    """

    def __init__(self, engine: Any, *, alpha: float = DEFAULT_ALPHA) -> None:
        """``engine``: the catalog's SQLAlchemy engine (tables are created by its migrations).

        A :class:`~sparkhu.storage.catalog.Catalog` is accepted too. ``alpha``: the default
        blending weight of a new forecast, in (0, 1].
        """
        self._engine: Engine = getattr(engine, "engine", engine)
        if not isinstance(self._engine, Engine):
            raise InputError(f"PredictionStore needs the catalog's engine, got {type(engine).__name__}")
        self.alpha = _alpha(alpha)

    def write(
        self,
        forecasts: pa.Table,
        *,
        alpha: float | None = None,
        checkpoint: Checkpoint | None = None,
        unblended: pa.Table | None = None,
    ) -> int:
        """Store forecasts (FORECAST_SCHEMA) and blend them into the blended table.

        One transaction; returns the number of new raw rows. Vectorised: blending is computed
        for the whole batch at once (several forecasts for one target inside the batch are
        applied in origin order). Forecasts already stored are ignored and not blended again.
        ``alpha`` (for this batch) wins over the per-series alpha, which wins over the store's.
        ``checkpoint``: the writer's state that produced these forecasts, saved in the same
        transaction (so the two are durable together or not at all; see :meth:`checkpoint`).
        ``unblended``: raw forecasts stored in the same transaction but never blended (models in
        shadow, compared with the champion without touching what is served); not counted.
        """
        batch = _normalise(forecasts)
        shadow = None if unblended is None or unblended.num_rows == 0 else _normalise(unblended)
        if batch.num_rows == 0 and checkpoint is None and shadow is None:
            return 0
        call_alpha = None if alpha is None else _alpha(alpha)
        names = sorted(set(batch.column("series_id").to_pylist()))
        with write_tx(self._engine, f"writing {batch.num_rows} forecasts of {len(names)} series") as conn:
            if checkpoint is not None:
                _save_checkpoint(conn, checkpoint)
            if shadow is not None:
                conn.execute(
                    dialect_insert(conn, schema.forecasts_raw).on_conflict_do_nothing(), shadow.to_pylist()
                )
            if batch.num_rows == 0:
                _write_also(conn, checkpoint)
                return 0
            if not is_sqlite(self._engine):
                _lock_series(conn, names)
            new = self._insert_raw(conn, batch)
            if new.num_rows:
                alphas = self._alphas(conn, names) if call_alpha is None else {}
                _blend_rows(conn, new, alphas, call_alpha or self.alpha)
            _write_also(conn, checkpoint)
        return new.num_rows

    def _insert_raw(self, conn: Connection, batch: pa.Table) -> pa.Table:
        """Insert the raw rows, skipping stored keys; the rows that were new (in batch order).

        One ``executemany`` of plain tuples inside a savepoint: when every row was new (the
        usual case) or none (a batch delivered again) that is all. Otherwise the savepoint is
        rolled back, the stored keys of the batch's series are read and only the new rows
        inserted.
        """
        raw = schema.forecasts_raw
        names = [c.name for c in raw.columns]
        sql = _insert_sql(conn, raw.name, names, conflict="ON CONFLICT DO NOTHING")
        rows = _tuples(batch, names)
        savepoint = conn.begin_nested()
        inserted = conn.exec_driver_sql(sql, rows).rowcount
        if inserted == batch.num_rows or inserted == 0:  # all new, or all stored (a re-delivery)
            savepoint.commit()
            return batch if inserted else batch.schema.empty_table()
        savepoint.rollback()
        stored = self._stored_keys(conn, batch)
        key = ["series_id", "target_ts", "origin_ts", "model"]
        marked = batch.append_column("_row", pa.array(np.arange(batch.num_rows)))
        new = marked.join(stored, keys=key, join_type="left anti")
        rows_new = np.sort(new.column("_row").to_numpy())
        fresh = batch.take(pa.array(rows_new, pa.int64()))
        if fresh.num_rows:
            conn.exec_driver_sql(sql, _tuples(fresh, names))
        return fresh

    def _stored_keys(self, conn: Connection, batch: pa.Table) -> pa.Table:
        """Keys already in the raw table among the batch's series and target ranges."""
        ranges = batch.group_by("series_id").aggregate([("target_ts", "min"), ("target_ts", "max")])
        triples = list(zip(*(ranges.column(i).to_pylist() for i in range(3)), strict=True))
        rows: list[Any] = []
        for chunk in _chunks(triples, _SERIES_PER_QUERY):
            terms = " OR ".join(
                f"(series_id = :s{i} AND target_ts BETWEEN :a{i} AND :b{i})" for i in range(len(chunk))
            )
            params = {}
            for i, (sid, lo, hi) in enumerate(chunk):
                params.update({f"s{i}": sid, f"a{i}": lo, f"b{i}": hi})
            query = sa.text(
                "SELECT series_id, target_ts, origin_ts, model "
                f"FROM {schema.forecasts_raw.name} WHERE {terms}"
            )
            rows.extend(conn.execute(query, params).all())
        names = ("series_id", "target_ts", "origin_ts", "model")
        types = (pa.string(), pa.int64(), pa.int64(), pa.string())
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
        return pa.table([pa.array(col, t) for col, t in zip(columns, types, strict=True)], names=list(names))

    def _alphas(self, conn: Connection, names: list[str]) -> dict[str, float]:
        a = schema.series_alpha
        out: dict[str, float] = {}
        for chunk in _chunks(names, 1000):
            out.update(
                conn.execute(sa.select(a.c.series_id, a.c.alpha).where(a.c.series_id.in_(chunk))).all()
            )
        return out

    def raw(
        self,
        series_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100_000,
    ) -> pa.Table:
        """Raw forecasts of a series whose target_ts is in [start, end), by target then origin."""
        r = schema.forecasts_raw
        query = (
            sa.select(*(r.c[name] for name in FORECAST_SCHEMA.names))
            .where(*_range(r, series_id, start, end))
            .order_by(r.c.target_ts, r.c.origin_ts, r.c.model)
            .limit(_limit(limit))
        )
        with read_tx(self._engine, f"reading raw forecasts of {series_id!r}") as conn:
            return _to_arrow(conn.execute(query).all(), FORECAST_SCHEMA)

    def blended(
        self,
        series_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100_000,
    ) -> pa.Table:
        """Blended forecasts (BLENDED_SCHEMA) of a series in [start, end), by target_ts."""
        b = schema.forecasts_blended
        query = (
            sa.select(*(b.c[name] for name in BLENDED_SCHEMA.names))
            .where(*_range(b, series_id, start, end))
            .order_by(b.c.target_ts)
            .limit(_limit(limit))
        )
        with read_tx(self._engine, f"reading blended forecasts of {series_id!r}") as conn:
            return _to_arrow(conn.execute(query).all(), BLENDED_SCHEMA)

    def checkpoint(self, owner: str) -> dict[str, bytes]:
        """The entries last saved with :meth:`write` under ``owner`` (empty when none), by key."""
        t = schema.online_state
        query = sa.select(t.c.key, t.c.value).where(t.c.owner == owner)
        with read_tx(self._engine, f"reading the checkpoint of {owner!r}") as conn:
            return {key: bytes(value) for key, value in conn.execute(query).all()}

    def drop_checkpoint(self, owner: str) -> int:
        """Forget ``owner``'s checkpoint (its writer then starts afresh); returns the entries removed."""
        t = schema.online_state
        with write_tx(self._engine, f"dropping the checkpoint of {owner!r}") as conn:
            return int(conn.execute(sa.delete(t).where(t.c.owner == owner)).rowcount)

    def latest_origin(self, series_id: str) -> datetime | None:
        """The newest origin_ts stored for a series."""
        r = schema.forecasts_raw
        query = sa.select(sa.func.max(r.c.origin_ts)).where(r.c.series_id == series_id)
        with read_tx(self._engine, f"reading the latest origin of {series_id!r}") as conn:
            return from_us(conn.execute(query).scalar())

    def series(self) -> list[str]:
        """Series that have forecasts."""
        b = schema.forecasts_blended
        query = sa.select(b.c.series_id).distinct().order_by(b.c.series_id)
        with read_tx(self._engine, "listing series with forecasts") as conn:
            return list(conn.execute(query).scalars())

    def set_alpha(self, series_id: str, alpha: float) -> None:
        """Override alpha for one series."""
        if not is_series_id(series_id):
            raise InputError(f"{series_id!r} is not source/measurement/field", field="series_id")
        row = {
            "series_id": series_id,
            "alpha": _alpha(alpha, series_id),
            "updated_at": now_us(),
        }
        stmt = dialect_insert(self._engine, schema.series_alpha)
        stmt = stmt.on_conflict_do_update(
            index_elements=["series_id"],
            set_={"alpha": stmt.excluded.alpha, "updated_at": stmt.excluded.updated_at},
        )
        with write_tx(self._engine, f"setting alpha of {series_id!r}") as conn:
            conn.execute(stmt, [row])

    def alphas(self) -> dict[str, float]:
        """The per-series alpha overrides."""
        a = schema.series_alpha
        with read_tx(self._engine, "reading alpha overrides") as conn:
            return dict(conn.execute(sa.select(a.c.series_id, a.c.alpha).order_by(a.c.series_id)).all())

    def delete_before(
        self,
        target_before: datetime,
        series: Sequence[str] | None = None,
        *,
        tables: Sequence[str] = ("raw", "blended"),
        dry_run: bool = False,
        keep: Callable[[str, list[dict[str, Any]]], None] | None = None,
    ) -> int:
        """Delete rows of ``tables`` (``raw``, ``blended``) with target_ts < target_before (retention).

        Returns the number of rows deleted from them together; with ``dry_run``, how many would be.
        ``keep(table, rows)`` is given each table's rows (as stored) before they are deleted, in the
        same transaction: if it raises, nothing is deleted (retention's soft delete).
        """
        if isinstance(series, str):
            raise InputError("must be a list of series ids, not one string", field="series")
        unknown = [t for t in tables if t not in ("raw", "blended")]
        if unknown:
            raise InputError(f"unknown table {unknown[0]!r}; expected raw or blended", field="tables")
        cutoff = to_us(target_before)
        deleted = 0
        chosen = {"raw": schema.forecasts_raw, "blended": schema.forecasts_blended}
        with write_tx(self._engine, "deleting old forecasts") as conn:
            for table in (chosen[t] for t in dict.fromkeys(tables)):
                cond = [table.c.target_ts < cutoff]
                if series is not None:
                    cond.append(table.c.series_id.in_(list(series)))
                if dry_run:
                    deleted += conn.execute(
                        sa.select(sa.func.count()).select_from(table).where(*cond)
                    ).scalar_one()
                else:
                    if keep is not None:
                        name = "raw" if table is schema.forecasts_raw else "blended"
                        keep(
                            name, [dict(row._mapping) for row in conn.execute(sa.select(table).where(*cond))]
                        )
                    deleted += conn.execute(sa.delete(table).where(*cond)).rowcount
        return deleted

    def put_back(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert rows of ``table`` (``raw`` or ``blended``, as :meth:`delete_before` gave them to
        ``keep``) again; a key present by now keeps its newer row. Returns how many were inserted."""
        chosen = {"raw": schema.forecasts_raw, "blended": schema.forecasts_blended}.get(table)
        if chosen is None:
            raise InputError(f"unknown table {table!r}; expected raw or blended", field="table")
        if not rows:
            return 0
        keys = [c.name for c in chosen.primary_key.columns]
        stmt = dialect_insert(self._engine, chosen).on_conflict_do_nothing(index_elements=keys)
        with write_tx(self._engine, f"putting back forecasts {table}") as conn:
            return conn.execute(stmt, [dict(row) for row in rows]).rowcount


def _normalise(forecasts: pa.Table) -> pa.Table:
    """The batch as plain columns (timestamps as int64 µs), validated and without duplicate keys."""
    if not isinstance(forecasts, pa.Table):
        raise InputError(f"forecasts must be a pyarrow Table, got {type(forecasts).__name__}")
    required = [f.name for f in FORECAST_SCHEMA if not f.nullable]
    missing = [name for name in required if name not in forecasts.column_names]
    if missing:
        raise InputError(
            f"missing column(s) {', '.join(missing)}; expected {', '.join(FORECAST_SCHEMA.names)}",
            source="forecasts",
        )
    columns: dict[str, pa.ChunkedArray | pa.Array] = {}
    for fld in FORECAST_SCHEMA:
        if fld.name not in forecasts.column_names:
            columns[fld.name] = pa.nulls(forecasts.num_rows, fld.type)
            continue
        col = forecasts.column(fld.name)
        try:
            if fld.name in _TS:
                if pa.types.is_timestamp(col.type):
                    col = col.cast(pa.timestamp("us", tz=col.type.tz)).cast(pa.int64())
                col = col.cast(pa.int64())
            elif pa.types.is_dictionary(col.type):
                col = col.cast(col.type.value_type).cast(fld.type)
            else:
                col = col.cast(fld.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise InputError(
                f"is {col.type}, expected {fld.type}", source="forecasts", field=fld.name
            ) from exc
        if not fld.nullable and col.null_count:
            raise InputError(f"has {col.null_count} null(s)", source="forecasts", field=fld.name)
        columns[fld.name] = col
    table = pa.table(columns)
    for name in ("value", "lower", "upper"):
        bad = pc.sum(pc.invert(pc.is_finite(table.column(name)))).as_py()
        if bad:
            raise InputError(f"has {bad} NaN or infinite value(s)", source="forecasts", field=name)
    bad_ids = [s for s in pc.unique(table.column("series_id")).to_pylist() if not is_series_id(s)]
    if bad_ids:
        raise InputError(
            f"{bad_ids[0]!r} is not source/measurement/field", source="forecasts", field="series_id"
        )
    early = pc.sum(pc.less(table.column("target_ts"), table.column("origin_ts"))).as_py()
    if early:
        raise InputError(f"{early} row(s) before origin_ts", source="forecasts", field="target_ts")
    return _sorted_unique(table)


def _sorted_unique(table: pa.Table) -> pa.Table:
    """Sorted by (series, target, origin, model); the first of duplicate keys kept."""
    table = table.sort_by([(c, "ascending") for c in ("series_id", "target_ts", "origin_ts", "model")])
    keys = [table.column(c).combine_chunks() for c in ("series_id", "target_ts", "origin_ts", "model")]
    if table.num_rows < 2:
        return table
    same = np.ones(table.num_rows - 1, dtype=bool)
    for key in keys:
        same &= pc.equal(key[1:], key[:-1]).to_numpy(zero_copy_only=False)
    if not same.any():
        return table
    return table.filter(pa.array(np.concatenate([[True], ~same])))


def _blend_rows(conn: Connection, new: pa.Table, alphas: Mapping[str, float], default: float) -> None:
    """Fold the new forecasts into the blended table, in the database, one statement per alpha.

    ``new`` is sorted by (series, target, origin, model) and the upserts run in that order, so
    several forecasts of one target in a batch are folded in origin order: the first of a
    new target is taken as it is, every later one as ``S = a·y + (1 − a)·S_prev`` (a missing
    bound leaves the blended bound as it was). No read of the blended rows is needed.
    """
    sid = new.column("series_id")
    alpha = np.full(new.num_rows, default)
    if alphas:
        index = pc.index_in(sid, value_set=pa.array(list(alphas), pa.string()))
        known = index.is_valid().to_numpy(zero_copy_only=False)
        per_series = np.asarray(list(alphas.values()), dtype=np.float64)
        alpha[known] = per_series[index.drop_null().to_numpy()]
    columns = ["series_id", "target_ts", "value", "lower", "upper"]
    table = new.select(columns).append_column("updated_at", pa.array(np.full(new.num_rows, now_us())))
    for a in np.unique(alpha).tolist():
        rows = table if a == default and not alphas else table.filter(pa.array(alpha == a))
        conn.exec_driver_sql(_blend_sql(conn, float(a)), _tuples(rows, [*columns, "updated_at"]))


def _blend_sql(conn: Connection, alpha: float) -> str:
    """The upsert that folds one forecast into its blended value with weight ``alpha``."""
    t = schema.forecasts_blended.name
    a = f"CAST({alpha!r} AS DOUBLE PRECISION)"
    b = f"CAST({1.0 - alpha!r} AS DOUBLE PRECISION)"

    def fold(col: str) -> str:
        return (
            f"CASE WHEN excluded.{col} IS NULL THEN {t}.{col} WHEN {t}.{col} IS NULL THEN excluded.{col} "
            f"ELSE {a} * excluded.{col} + {b} * {t}.{col} END"
        )

    names = ["series_id", "target_ts", "value", "lower", "upper", "updated_at"]
    update = (
        f"ON CONFLICT (series_id, target_ts) DO UPDATE SET value = {a} * excluded.value + {b} * {t}.value, "
        f"lower = {fold('lower')}, upper = {fold('upper')}, updates = {t}.updates + 1, "
        "updated_at = excluded.updated_at"
    )
    marks = _marks(conn, len(names))
    return (
        f"INSERT INTO {t} (series_id, target_ts, value, lower, upper, updated_at, updates) "
        f"VALUES ({marks}, 1) {update}"
    )


def _marks(conn: Connection, n: int) -> str:
    """``n`` positional parameter marks in the driver's style (``?`` for SQLite, ``%s`` for psycopg)."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return ", ".join([mark] * n)


def _insert_sql(conn: Connection, table: str, names: Sequence[str], conflict: str) -> str:
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({_marks(conn, len(names))}) {conflict}"


def _tuples(table: pa.Table, names: Sequence[str]) -> list[tuple[Any, ...]]:
    """The rows of ``table``'s columns ``names`` as plain Python tuples (for a driver's executemany)."""
    columns = []
    for name in names:
        col = table.column(name)
        if pa.types.is_floating(col.type) and col.null_count == 0:
            columns.append(col.to_numpy().tolist())
        elif pa.types.is_integer(col.type) and col.null_count == 0:
            columns.append(col.to_numpy().tolist())
        else:
            columns.append(col.to_pylist())
    return list(zip(*columns, strict=True))


def _save_checkpoint(conn: Connection, checkpoint: Checkpoint) -> None:
    if not checkpoint.owner:
        raise InputError("a checkpoint needs an owner name", field="owner")
    if not checkpoint.entries:
        return
    t = schema.online_state.name
    now = now_us()
    rows = [(checkpoint.owner, key, bytes(value), now) for key, value in checkpoint.entries.items()]
    sql = (
        f"INSERT INTO {t} (owner, key, value, updated_at) VALUES ({_marks(conn, 4)}) "
        "ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
    )
    conn.exec_driver_sql(sql, rows)


def _write_also(conn: Connection, checkpoint: Checkpoint | None) -> None:
    if checkpoint is not None and checkpoint.also is not None:
        checkpoint.also(conn)


def _lock_series(conn: Connection, names: list[str]) -> None:
    """PostgreSQL: transaction-scoped advisory locks on the batch's series, in a fixed order.

    Concurrent writers of one series then blend one after the other (no lost updates).
    """
    keys = sorted(
        int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
        for name in names
    )
    conn.execute(
        sa.text(
            "SELECT count(pg_advisory_xact_lock(k)) "
            "FROM (SELECT unnest(CAST(:keys AS BIGINT[])) AS k ORDER BY 1) AS s"
        ),
        {"keys": keys},
    )


def _to_arrow(rows: Sequence[Any], target: pa.Schema) -> pa.Table:
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in target]
    arrays = []
    for fld, col in zip(target, columns, strict=True):
        if pa.types.is_timestamp(fld.type):
            arrays.append(pa.array(col, pa.int64()).cast(fld.type))
        else:
            arrays.append(pa.array(col, fld.type))
    return pa.Table.from_arrays(arrays, schema=target)


def _range(table: sa.Table, series_id: str, start: datetime | None, end: datetime | None) -> list[Any]:
    conds: list[Any] = [table.c.series_id == series_id]
    if start is not None:
        conds.append(table.c.target_ts >= to_us(start))
    if end is not None:
        conds.append(table.c.target_ts < to_us(end))
    return conds


def _limit(limit: int) -> int:
    if not isinstance(limit, int) or limit < 1:
        raise InputError(f"must be a positive integer, got {limit!r}", field="limit")
    return limit


def _alpha(alpha: float, series_id: str | None = None) -> float:
    if not isinstance(alpha, int | float) or not 0.0 < float(alpha) <= 1.0:
        of = f" (series {series_id})" if series_id else ""
        raise InputError(f"must be in (0, 1], got {alpha!r}{of}", field="alpha")
    return float(alpha)


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
