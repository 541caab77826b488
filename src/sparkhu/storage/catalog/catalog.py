"""The :class:`Catalog` service over the catalog database."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sparkhu.errors import CatalogError, InputError, NotFoundError
from sparkhu.series import SeriesId, is_series_id
from sparkhu.storage.catalog import migrate as migrations
from sparkhu.storage.catalog import schema
from sparkhu.storage.catalog.control import ControlStore
from sparkhu.storage.catalog.engine import (
    connect,
    dialect_insert,
    is_sqlite,
    mask,
    parse_uri,
    read_tx,
    write_tx,
)
from sparkhu.storage.catalog.meta import MetadataStore, index_words, source_rows
from sparkhu.storage.catalog.records import (
    EXTRA_KEY,
    RUN_STATUSES,
    RunRecord,
    SeriesInfo,
    check_json,
    check_limit,
    check_status,
    check_text,
    partition_row,
    run_record,
    series_info,
)
from sparkhu.storage.writes import current_run
from sparkhu.timeaxis import from_us, now_us, to_us

__all__ = ["RUN_STATUSES", "Catalog", "RunRecord", "SeriesInfo"]

PARTITION_STATS = ("files", "rows", "bytes", "updated_at")


class Catalog(MetadataStore, ControlStore):
    """The feature metadata store. Thread-safe; safe across processes on SQLite (WAL) and PostgreSQL.

    Every method is one transaction; writes are committed before they return.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     cat = Catalog(f"sqlite:///{tmp}/catalog.db")
    ...     cat.upsert_series(SeriesInfo.of("ampds2/electricity/WHE.P", unit="W"))
    ...     cat.set_watermark("csv", "meters.csv", {"line": 42})
    ...     info, mark = cat.series("ampds2/electricity/WHE.P"), cat.get_watermark("csv", "meters.csv")
    ...     cat.close()
    >>> info.unit, info.count, mark
    ('W', 0, {'line': 42})
    """

    def __init__(self, uri: str, *, migrate: bool = True) -> None:
        """Connect to ``uri`` and bring the schema to the latest migration when ``migrate``.

        Raises :class:`~sparkhu.errors.ConfigError` for a URI that is neither SQLite nor
        PostgreSQL, :class:`~sparkhu.errors.BackendUnavailable` (with the URI, password
        masked) when the database cannot be reached, and :class:`~sparkhu.errors.CatalogError`
        when ``migrate`` is false and the schema is not at the newest revision.
        """
        url = parse_uri(uri)
        self.uri = mask(uri)
        if migrate:
            with migrations.migration_lock(url):
                self._engine = connect(uri)
                migrations.upgrade(self._engine, locked=True)
        else:
            self._engine = connect(uri)
            try:
                migrations.check(self._engine)
            except CatalogError:
                self._engine.dispose()
                raise

    def __repr__(self) -> str:
        return f"Catalog({self.uri!r})"

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (shared with the prediction store)."""
        return self._engine

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    # ------------------------------------------------------------------ sources and series
    def upsert_source(self, name: str, kind: str, config: Mapping[str, Any] | None = None) -> None:
        """Insert or update a source (a connector's configuration by name)."""
        check_text(name, "source name")
        check_text(kind, "source kind")
        now = now_us()
        config_ = check_json(config or {}, f"config of source {name}")
        row = {"name": name, "kind": kind, "config": config_, "updated_at": now}
        self._upsert(schema.sources, [{**row, "created_at": now}], ["name"], row, f"saving source {name!r}")

    def delete_source(self, name: str) -> bool:
        """Forget a source (its watermarks stay); True when there was one."""
        src = schema.sources
        with write_tx(self._engine, f"deleting source {name!r}") as conn:
            return bool(conn.execute(sa.delete(src).where(src.c.name == name)).rowcount)

    def sources(self) -> list[dict[str, Any]]:
        """Known sources (name, kind, config, created_at, updated_at, and ``watermarks``: the
        positions the source saved, ``{key: position}``), by name."""
        with read_tx(self._engine, "listing sources") as conn:
            return source_rows(conn)

    def upsert_series(self, info: SeriesInfo) -> None:
        """Insert or update a series' descriptive metadata (unit, period, tags, range).

        Statistics (first/last timestamp, count) are only taken from ``info`` when the series
        is new; afterwards :meth:`update_series_stats` maintains them.
        """
        sid = SeriesId.parse(info.series_id)
        if (info.source, info.measurement, info.field) != (sid.source, sid.measurement, sid.field):
            raise InputError(
                f"series {info.series_id!r}: source/measurement/field "
                f"{info.source!r}/{info.measurement!r}/{info.field!r} do not match the id; "
                "build it with SeriesInfo.of(series_id, ...)",
                field="series_id",
            )
        if info.value_min is not None and info.value_max is not None and info.value_min > info.value_max:
            raise InputError(
                f"series {info.series_id!r}: value_min {info.value_min} > value_max {info.value_max}",
                field="value_min",
            )
        tags = check_json(info.tags, f"tags of {info.series_id}")
        user_tags = {str(k): str(v) for k, v in tags.items() if k != EXTRA_KEY and v is not None}
        if info.extra:
            tags[EXTRA_KEY] = check_json(info.extra, f"extra metadata of {info.series_id}")
        else:  # keep what the pipeline recorded
            tags.pop(EXTRA_KEY, None)
            with read_tx(self._engine, f"reading series {info.series_id!r}") as conn:
                old = conn.execute(
                    sa.select(schema.series.c.tags).where(schema.series.c.series_id == info.series_id)
                ).scalar()
            if old and EXTRA_KEY in old:
                tags[EXTRA_KEY] = old[EXTRA_KEY]
        descriptive = {
            "unit": info.unit,
            "period_s": info.period_s,
            "regular": info.regular,
            "tags": tags,
            "value_min": info.value_min,
            "value_max": info.value_max,
            "updated_at": now_us(),
        }
        row = {
            "series_id": info.series_id,
            "source": sid.source,
            "measurement": sid.measurement,
            "field": sid.field,
            "first_ts": to_us(info.first_ts),
            "last_ts": to_us(info.last_ts),
            "count": info.count,
            **descriptive,
        }
        t = schema.series_tags
        stmt = _upsert_stmt(self._engine, schema.series, ["series_id"], list(descriptive))
        with write_tx(self._engine, f"saving series {info.series_id!r}") as conn:
            conn.execute(stmt, [row])
            described = schema.series.c.description
            text = conn.execute(
                sa.select(described).where(schema.series.c.series_id == info.series_id)
            ).scalar()
            index_words(conn, {info.series_id: text})
            conn.execute(sa.delete(t).where(t.c.series_id == info.series_id))
            if user_tags:
                rows = [{"series_id": info.series_id, "key": k, "value": v} for k, v in user_tags.items()]
                conn.execute(sa.insert(t), rows)

    def update_series_stats(self, points: pa.Table) -> None:
        """Widen first/last timestamps and add to counts from a batch of points (one query per batch).

        ``points`` has ``series_id`` and ``ts`` columns (POINT_SCHEMA); unknown series are
        created. Aggregated per series with Arrow, then one upsert per series, in one transaction.
        """
        missing = {"series_id", "ts"} - set(points.column_names)
        if missing:
            raise InputError(f"missing column(s) {', '.join(sorted(missing))}", source="points")
        if points.num_rows == 0:
            return
        ts = points.column("ts")
        if not pa.types.is_timestamp(ts.type):
            raise InputError(f"is {ts.type}, expected timestamp[us, UTC]", source="points", field="ts")
        ids_column = points.column("series_id")
        # grouped on the dictionary when there is one: no per-row strings
        if pa.types.is_dictionary(ids_column.type):
            ids_column = ids_column.unify_dictionaries()
        else:
            ids_column = ids_column.cast(pa.string())
        table = pa.table(
            {"series_id": ids_column, "ts": ts.cast(pa.timestamp("us", tz=ts.type.tz)).cast(pa.int64())}
        )
        if table.column("series_id").null_count or table.column("ts").null_count:
            raise InputError("series_id and ts must not be null", source="points")
        stats = table.group_by("series_id").aggregate([("ts", "min"), ("ts", "max"), ("ts", "count")])
        self.add_series_stats(
            stats.column("series_id").cast(pa.string()).to_pylist(),
            stats.column("ts_min").to_pylist(),
            stats.column("ts_max").to_pylist(),
            stats.column("ts_count").to_pylist(),
        )

    def add_series_stats(
        self, ids: Sequence[str], firsts: Sequence[int], lasts: Sequence[int], counts: Sequence[int]
    ) -> None:
        """Widen first/last timestamps (µs) and add to the counts of ``ids``, in one transaction.

        The statistics of points already aggregated per series (what
        :meth:`update_series_stats` does with a batch); unknown series are created.

        >>> with Catalog("sqlite://") as catalog:
        ...     catalog.add_series_stats(["a/b/c"], [0], [60_000_000], [2])
        ...     catalog.add_series_stats(["a/b/c"], [120_000_000], [120_000_000], [1])
        ...     catalog.series("a/b/c").count
        3
        """
        bad = [sid for sid in ids if not is_series_id(sid)]
        if bad:
            SeriesId.parse(bad[0])
        if not ids:
            return
        now = now_us()
        rows = []
        for sid, first, last, count in zip(ids, firsts, lasts, counts, strict=True):
            source, measurement, field_ = sid.split("/")
            rows.append(
                {
                    "series_id": sid,
                    "source": source,
                    "measurement": measurement,
                    "field": field_,
                    "first_ts": first,
                    "last_ts": last,
                    "count": count,
                    "tags": {},
                    "updated_at": now,
                }
            )
        s = schema.series
        lo = sa.func.min if is_sqlite(self._engine) else sa.func.least
        hi = sa.func.max if is_sqlite(self._engine) else sa.func.greatest
        stmt = dialect_insert(self._engine, s)
        new = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["series_id"],
            set_={
                "first_ts": lo(sa.func.coalesce(s.c.first_ts, new.first_ts), new.first_ts),
                "last_ts": hi(sa.func.coalesce(s.c.last_ts, new.last_ts), new.last_ts),
                "count": s.c.count + new.count,
                "updated_at": new.updated_at,
            },
        )
        with write_tx(self._engine, f"updating statistics of {len(rows)} series") as conn:
            conn.execute(stmt, rows)

    def update_series_meta(self, series_id: str, **fields: Any) -> None:
        """Record metadata a pipeline task found for one series (see :meth:`update_series_metas`)."""
        self.update_series_metas({series_id: fields})

    def update_series_metas(self, updates: Mapping[str, Mapping[str, Any]]) -> None:
        """Record pipeline metadata of many series in one transaction.

        ``unit``, ``period_s``, ``regular``, ``value_min`` and ``value_max`` update their
        columns; any other key is merged into :attr:`SeriesInfo.extra`. Unknown series raise
        :class:`~sparkhu.errors.NotFoundError` (nothing is written).
        """
        s = schema.series
        columns = {"unit", "period_s", "regular", "value_min", "value_max"}
        if not updates:
            return
        with write_tx(self._engine, f"updating metadata of {len(updates)} series") as conn:
            ids = list(updates)
            found = {
                row.series_id: row.tags
                for start in range(0, len(ids), 500)
                for row in conn.execute(
                    sa.select(s.c.series_id, s.c.tags).where(s.c.series_id.in_(ids[start : start + 500]))
                )
            }
            missing = [sid for sid in ids if sid not in found]
            if missing:
                raise NotFoundError(
                    f"series {missing[0]!r} is not in the catalog {self.uri}; "
                    "register it (upsert_series) before recording its metadata"
                )
            now = now_us()
            for sid, fields in updates.items():
                values: dict[str, Any] = {k: v for k, v in fields.items() if k in columns}
                extra = {k: v for k, v in fields.items() if k not in columns}
                if extra:
                    tags = dict(found[sid] or {})
                    tags[EXTRA_KEY] = {
                        **(tags.get(EXTRA_KEY) or {}),
                        **check_json(extra, f"metadata of {sid}"),
                    }
                    values["tags"] = tags
                if values:
                    conn.execute(sa.update(s).where(s.c.series_id == sid).values(**values, updated_at=now))

    def series(self, series_id: str) -> SeriesInfo:
        """Raises :class:`~sparkhu.errors.NotFoundError` for an unknown id."""
        with read_tx(self._engine, f"reading series {series_id!r}") as conn:
            row = conn.execute(sa.select(schema.series).where(schema.series.c.series_id == series_id)).first()
        if row is None:
            raise NotFoundError(
                f"series {series_id!r} is not in the catalog {self.uri}; "
                "ingest it first; `sparkhu series` (GraphQL: `series`) lists the known ones"
            )
        return series_info(row._mapping)

    def last_ts(self, series_ids: Sequence[str]) -> dict[str, int]:
        """The newest timestamp (µs) counted for each of ``series_ids`` that has one (one query per 1,000)."""
        s = schema.series
        ids = list(series_ids)
        out: dict[str, int] = {}
        with read_tx(self._engine, f"reading the last timestamps of {len(ids)} series") as conn:
            for i in range(0, len(ids), 1000):
                query = sa.select(s.c.series_id, s.c.last_ts).where(
                    s.c.series_id.in_(ids[i : i + 1000]), s.c.last_ts.is_not(None)
                )
                out.update((sid, int(last)) for sid, last in conn.execute(query).all())
        return out

    def list_series(self, *, prefix: str = "", limit: int = 10_000) -> list[SeriesInfo]:
        """Series whose id starts with ``prefix`` (case-sensitive), by id, at most ``limit``."""
        check_limit(limit)
        s = schema.series
        query = sa.select(s).order_by(s.c.series_id).limit(limit)
        if prefix:
            query = query.where(sa.func.substr(s.c.series_id, 1, len(prefix)) == prefix)
        with read_tx(self._engine, "listing series") as conn:
            return [series_info(row._mapping) for row in conn.execute(query)]

    # ------------------------------------------------------------------ datasets and partitions
    def register_partitions(self, zone: str, dataset: str, partitions: Sequence[Any]) -> None:
        """Record (upsert) PartitionInfo rows for a dataset.

        Each partition is a :class:`~sparkhu.storage.lake.PartitionInfo` (or any object or
        mapping with ``key``, ``files``, ``rows`` and ``bytes``).
        """
        check_text(zone, "zone")
        check_text(dataset, "dataset")
        now = now_us()
        rows = [partition_row(zone, dataset, part, now) for part in partitions]
        ds = _upsert_stmt(self._engine, schema.datasets, ["zone", "dataset"], ["updated_at"])
        parts = _upsert_stmt(self._engine, schema.partitions, ["zone", "dataset", "key"], PARTITION_STATS)
        with write_tx(self._engine, f"registering partitions of {zone}/{dataset}") as conn:
            conn.execute(ds, [{"zone": zone, "dataset": dataset, "created_at": now, "updated_at": now}])
            if rows:
                conn.execute(parts, rows)

    def list_partitions(self, zone: str, dataset: str) -> list[dict[str, Any]]:
        """Recorded partitions of a dataset by key: zone, dataset, key, files, rows, bytes, updated_at."""
        p = schema.partitions
        query = sa.select(p).where(p.c.zone == zone, p.c.dataset == dataset).order_by(p.c.key)
        with read_tx(self._engine, f"listing partitions of {zone}/{dataset}") as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        for row in rows:
            for name in ("updated_at", "first_ts", "last_ts"):
                row[name] = from_us(row[name])
        return rows

    def forget_partitions(self, zone: str, dataset: str, keys: Sequence[str]) -> int:
        """Remove partition records (after the lake dropped them); returns how many were removed."""
        p = schema.partitions
        stmt = sa.delete(p).where(p.c.zone == zone, p.c.dataset == dataset, p.c.key.in_(list(keys)))
        with write_tx(self._engine, f"forgetting partitions of {zone}/{dataset}") as conn:
            return conn.execute(stmt).rowcount

    # ------------------------------------------------------------------ watermarks
    def get_watermark(self, owner: str, key: str = "") -> dict[str, Any] | None:
        """The JSON position ``owner`` (a connector name) saved for ``key`` (e.g. a file path)."""
        w = schema.watermarks
        with read_tx(self._engine, f"reading watermark {owner}/{key}") as conn:
            return conn.execute(sa.select(w.c.position).where(w.c.owner == owner, w.c.key == key)).scalar()

    def set_watermark(self, owner: str, key: str, position: Mapping[str, Any]) -> None:
        """Save a position; committed before returning."""
        check_text(owner, "watermark owner")
        row = {"position": check_json(position, f"watermark {owner}/{key}"), "updated_at": now_us()}
        self._upsert(
            schema.watermarks,
            [{"owner": owner, "key": key, **row}],
            ["owner", "key"],
            row,
            f"saving watermark {owner}/{key}",
        )

    # ------------------------------------------------------------------ leases
    def acquire_lease(
        self, name: str, holder: str, ttl_s: float, info: Mapping[str, Any] | None = None
    ) -> tuple[int | None, dict[str, Any]]:
        """Take the cross-process lease ``name`` for ``ttl_s`` seconds unless another holder's lease
        is still unexpired: ``(expires_us, info)`` when taken, ``(None, holder's info)`` when not.

        One atomic ``INSERT ... ON CONFLICT DO UPDATE ... WHERE expired`` (SQLite and PostgreSQL),
        so two processes never both get it; a crashed holder's lease lapses after ``ttl_s``.
        The row is a watermark of owner ``lease`` whose ``updated_at`` is the expiry.
        """
        w = schema.watermarks
        now = now_us()
        expires = now + int(ttl_s * 1_000_000)
        body = check_json({**(info or {}), "holder": holder, "since": now}, f"lease {name}")
        stmt = dialect_insert(self._engine, w).values(
            owner="lease", key=name, position=body, updated_at=expires
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["owner", "key"],
            set_={"position": stmt.excluded.position, "updated_at": stmt.excluded.updated_at},
            where=w.c.updated_at < now,
        )
        with write_tx(self._engine, f"taking lease {name}") as conn:
            conn.execute(stmt)
            row = conn.execute(
                sa.select(w.c.position, w.c.updated_at).where(w.c.owner == "lease", w.c.key == name)
            ).one()
        current = dict(row.position)
        current["expires"] = row.updated_at
        return (expires if current.get("holder") == holder else None), current

    def renew_lease(self, name: str, expires_us: int, ttl_s: float) -> int | None:
        """Extend the lease ``name`` held until ``expires_us`` (as returned when taken or last renewed)
        by ``ttl_s`` seconds from now; the new expiry, or None if it was lost meanwhile."""
        w = schema.watermarks
        new = max(now_us() + int(ttl_s * 1_000_000), expires_us + 1)
        stmt = (
            sa.update(w)
            .where(w.c.owner == "lease", w.c.key == name, w.c.updated_at == expires_us)
            .values(updated_at=new)
        )
        with write_tx(self._engine, f"renewing lease {name}") as conn:
            return new if conn.execute(stmt).rowcount == 1 else None

    def release_lease(self, name: str, expires_us: int) -> None:
        """Give up the lease ``name`` held until ``expires_us`` (nothing if it was lost meanwhile)."""
        w = schema.watermarks
        stmt = sa.delete(w).where(w.c.owner == "lease", w.c.key == name, w.c.updated_at == expires_us)
        with write_tx(self._engine, f"releasing lease {name}") as conn:
            conn.execute(stmt)

    # ------------------------------------------------------------------ runs
    def start_run(self, record: RunRecord) -> None:
        """Record a run; its ``run_id`` must be new (:class:`CatalogError` otherwise)."""
        check_text(record.run_id, "run_id")
        check_text(record.kind, "kind")
        check_text(record.name, "name")
        check_status(record.status)
        row = _run_row(record)
        with write_tx(self._engine, f"starting run {record.run_id!r} (is the run id unique?)") as conn:
            conn.execute(sa.insert(schema.runs), [row])

    def record_runs(self, records: Sequence[RunRecord]) -> None:
        """Insert finished run records in bulk, in one transaction (run ids must be new)."""
        rows = []
        for record in records:
            check_text(record.run_id, "run_id")
            check_text(record.kind, "kind")
            check_text(record.name, "name")
            check_status(record.status)
            rows.append(_run_row(record))
        if rows:
            with write_tx(self._engine, f"recording {len(rows)} runs (are the run ids unique?)") as conn:
                conn.execute(sa.insert(schema.runs), rows)

    def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        rows_in: int | None = None,
        rows_out: int | None = None,
        error: str | None = None,
    ) -> None:
        """Set a run's final status and finish time (and counts, error when given)."""
        check_status(status)
        r = schema.runs
        values: dict[str, Any] = {"status": status, "finished_at": now_us()}
        for name, value in (("rows_in", rows_in), ("rows_out", rows_out), ("error", error)):
            if value is not None:
                values[name] = value
        with write_tx(self._engine, f"finishing run {run_id!r}") as conn:
            updated = conn.execute(sa.update(r).where(r.c.run_id == run_id).values(**values)).rowcount
        if updated == 0:
            raise NotFoundError(f"run {run_id!r} was never started; call start_run first")

    def runs(
        self,
        *,
        kind: str | None = None,
        name: str | None = None,
        limit: int = 100,
        name_prefix: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        series_id: str | None = None,
    ) -> list[RunRecord]:
        """Newest first; ``since``/``until`` bound ``interval_start`` (since ≤ it < until)."""
        check_limit(limit)
        r = schema.runs
        query = sa.select(r).order_by(r.c.started_at.desc(), r.c.run_id.desc()).limit(limit)
        query = query.where(*_run_filters(kind, name, name_prefix, since, until, series_id))
        with read_tx(self._engine, "listing runs") as conn:
            return [run_record(row._mapping) for row in conn.execute(query)]

    def run_counts(
        self,
        kind: str,
        *,
        name: str | None = None,
        name_prefix: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        series_id: str | None = None,
    ) -> list[tuple[str, datetime, str, int]]:
        """``(name, interval_start, status, records)`` of the run records that match, counted in
        the database (a grid of 1,000 series × 13 tasks × 30 days is 390,000 records). With ``name``
        the ``(kind, name, started_at)`` index narrows the scan to that task's records.

        >>> import tempfile
        >>> from datetime import UTC
        >>> with tempfile.TemporaryDirectory() as tmp, Catalog(f"sqlite:///{tmp}/c.db") as catalog:
        ...     day = datetime(2024, 1, 1, tzinfo=UTC)
        ...     catalog.record_runs([RunRecord(f"r{i}", "pipeline.series", "m/copy", "success", day,
        ...                                    series_id=f"a/b/{i}", interval_start=day) for i in range(3)])
        ...     catalog.run_counts("pipeline.series", name_prefix="m/")[0][2:]
        ('success', 3)
        """
        r = schema.runs
        records = sa.func.count().label("records")
        query = (
            sa.select(r.c.name, r.c.interval_start, r.c.status, records)
            .where(*_run_filters(kind, name, name_prefix, since, until, series_id))
            .where(r.c.interval_start.is_not(None))
            .group_by(r.c.name, r.c.interval_start, r.c.status)
        )
        with read_tx(self._engine, "counting runs") as conn:
            return [(row[0], from_us(row[1]), row[2], int(row[3])) for row in conn.execute(query)]

    def delete_runs(
        self,
        before: datetime,
        *,
        kind: str | None = None,
        keep_kinds: Sequence[str] = (),
        dry_run: bool = False,
        keep: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> int:
        """Delete finished run records (any status but ``running``) started before ``before``, of
        ``kind`` (a glob such as ``pipeline*``) when given, never of ``keep_kinds``; returns how many
        (would be, with ``dry_run``). ``keep`` is given the rows (as stored) before they are deleted,
        in the same transaction: if it raises, nothing is deleted (retention's soft delete)."""
        r = schema.runs
        cond = [r.c.started_at < to_us(before), r.c.status != "running"]
        if keep_kinds:
            cond.append(r.c.kind.notin_(list(keep_kinds)))
        if kind is not None:
            cond.append(
                r.c.kind.like(kind.replace("%", r"\%").replace("_", r"\_").replace("*", "%"), escape="\\")
            )
        with write_tx(self._engine, "deleting old run records") as conn:
            if dry_run:
                return int(conn.execute(sa.select(sa.func.count()).select_from(r).where(*cond)).scalar_one())
            if keep is not None:
                keep([dict(row._mapping) for row in conn.execute(sa.select(r).where(*cond))])
            return conn.execute(sa.delete(r).where(*cond)).rowcount

    def put_back_runs(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert run rows (as :meth:`delete_runs` gave them to ``keep``) again; a run id present by
        now is left as it is. Returns how many were inserted."""
        r = schema.runs
        if not rows:
            return 0
        stmt = dialect_insert(self._engine, r).on_conflict_do_nothing(index_elements=["run_id"])
        with write_tx(self._engine, "putting back run records") as conn:
            return conn.execute(stmt, [dict(row) for row in rows]).rowcount

    # ------------------------------------------------------------------ models
    def register_model(
        self,
        name: str,
        version: str,
        series_id: str | None,
        uri: str,
        metrics: Mapping[str, float],
        *,
        run_id: str | None = None,
    ) -> None:
        """Record (or update) a model version: where it is stored, how well it scored and the run
        that made it (``run_id``, by default the one named by :func:`~sparkhu.storage.writes.writing_run`)."""
        check_text(name, "model name")
        check_text(version, "model version")
        check_text(uri, "model uri")
        values = {
            "series_id": series_id,
            "uri": uri,
            "metrics": check_json(metrics, f"metrics of {name}"),
            "run_id": run_id or current_run(),
        }
        self._upsert(
            schema.models,
            [{"name": name, "version": version, "aliases": [], "created_at": now_us(), **values}],
            ["name", "version"],
            values,
            f"registering model {name} {version}",
        )

    def models(self, *, series_id: str | None = None) -> list[dict[str, Any]]:
        """Model versions (name, version, series_id, uri, metrics, aliases, created_at), newest first."""
        m = schema.models
        query = sa.select(m).order_by(m.c.created_at.desc(), m.c.name, m.c.version.desc())
        if series_id is not None:
            query = query.where(m.c.series_id == series_id)
        with read_tx(self._engine, "listing models") as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        for row in rows:
            row["created_at"] = from_us(row["created_at"])
        return rows

    def model(self, name: str, version: int | str) -> dict[str, Any] | None:
        """One model version's record (as in :meth:`models`, with its run and feature view), or None."""
        m = schema.models
        query = sa.select(m).where(m.c.name == name, m.c.version == str(version))
        with read_tx(self._engine, f"reading model {name} {version}") as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else {**row, "created_at": from_us(row["created_at"])}

    # ------------------------------------------------------------------ policies
    def set_policy(self, kind: str, name: str, body: Mapping[str, Any]) -> None:
        """Save (replace) the policy ``name`` of ``kind`` (``retention``, ``training``...)."""
        check_text(kind, "policy kind")
        check_text(name, "policy name")
        row = {"body": check_json(body, f"policy {kind}/{name}"), "updated_at": now_us()}
        self._upsert(
            schema.policies,
            [{"kind": kind, "name": name, **row}],
            ["kind", "name"],
            row,
            f"saving policy {kind}/{name}",
        )

    def policies(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Policies (kind, name, body, updated_at), by kind then name."""
        p = schema.policies
        query = sa.select(p).order_by(p.c.kind, p.c.name)
        if kind is not None:
            query = query.where(p.c.kind == kind)
        with read_tx(self._engine, "listing policies") as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        for row in rows:
            row["updated_at"] = from_us(row["updated_at"])
        return rows

    def delete_policy(self, kind: str, name: str) -> bool:
        """Remove a policy; True when it existed."""
        p = schema.policies
        with write_tx(self._engine, f"deleting policy {kind}/{name}") as conn:
            return conn.execute(sa.delete(p).where(p.c.kind == kind, p.c.name == name)).rowcount > 0

    # ------------------------------------------------------------------ audit log
    def audit(self, actor: str, action: str, target: str, detail: Mapping[str, Any] | None = None) -> None:
        """Append an entry to the audit log (there is no way to change or remove one)."""
        check_text(actor, "actor")
        check_text(action, "action")
        row = {
            "at": now_us(),
            "actor": actor,
            "action": action,
            "target": target,
            "detail": check_json(detail or {}, f"audit detail of {action}"),
        }
        with write_tx(self._engine, f"auditing {action} on {target}") as conn:
            conn.execute(sa.insert(schema.audit_log), [row])

    def audit_log(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first: id, at, actor, action, target, detail."""
        check_limit(limit)
        a = schema.audit_log
        query = sa.select(a).order_by(a.c.id.desc()).limit(limit)
        with read_tx(self._engine, "reading the audit log") as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        for row in rows:
            row["at"] = from_us(row["at"])
        return rows

    # ------------------------------------------------------------------ helpers
    def _upsert(
        self,
        table: sa.Table,
        rows: list[dict[str, Any]],
        keys: list[str],
        update: Mapping[str, Any],
        what: str,
    ) -> None:
        stmt = _upsert_stmt(self._engine, table, keys, list(update))
        with write_tx(self._engine, what) as conn:
            conn.execute(stmt, rows)


def _upsert_stmt(engine: Engine, table: sa.Table, keys: Sequence[str], update: Sequence[str]) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE SET`` the ``update`` columns from the new row."""
    stmt = dialect_insert(engine, table)
    return stmt.on_conflict_do_update(index_elements=list(keys), set_={k: stmt.excluded[k] for k in update})


def _run_filters(
    kind: str | None,
    name: str | None,
    name_prefix: str | None,
    since: datetime | None,
    until: datetime | None,
    series_id: str | None,
) -> list[Any]:
    r = schema.runs
    where: list[Any] = []
    if kind is not None:
        where.append(r.c.kind == kind)
    if name is not None:
        where.append(r.c.name == name)
    if name_prefix:
        escaped = name_prefix.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
        where.append(r.c.name.like(escaped + "%", escape="\\"))
    if since is not None:
        where.append(r.c.interval_start >= to_us(since))
    if until is not None:
        where.append(r.c.interval_start < to_us(until))
    if series_id is not None:
        where.append(r.c.series_id == series_id)
    return where


def _run_row(record: RunRecord) -> dict[str, Any]:
    """The ``runs`` row of a record."""
    return {
        "run_id": record.run_id,
        "kind": record.kind,
        "name": record.name,
        "status": record.status,
        "started_at": to_us(record.started_at),
        "finished_at": to_us(record.finished_at),
        "series_id": record.series_id,
        "interval_start": to_us(record.interval_start),
        "interval_end": to_us(record.interval_end),
        "rows_in": record.rows_in,
        "rows_out": record.rows_out,
        "params": check_json(record.params, f"params of run {record.run_id}"),
        "error": record.error,
    }
