"""The metadata half of the catalog: lake datasets and partitions as written, series descriptions,
tags and declared lineage, feature views, and the facts a lineage graph is drawn from.

:class:`MetadataStore` is a base of :class:`~sparkhu.storage.catalog.Catalog` (the one door to the
catalog); it is its own module so that the catalog's two halves stay readable. Each method is one
transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sparkhu.errors import InputError, NotFoundError
from sparkhu.series import SeriesId
from sparkhu.storage.catalog import schema
from sparkhu.storage.catalog.engine import dialect_insert, is_sqlite, read_tx, write_tx
from sparkhu.storage.catalog.records import (
    EXTRA_KEY,
    UNSET,
    SeriesInfo,
    SeriesMeta,
    check_json,
    check_limit,
    check_tags,
    check_text,
    series_info,
    words,
)
from sparkhu.storage.writes import PartitionWrite
from sparkhu.timeaxis import from_us, now_us

CHUNK = 500
"""Ids per ``IN (...)`` list."""
LINEAGE_RUNS = 20
"""Retention actions a lineage shows (the newest)."""


class MetadataStore:
    """Datasets, partitions, series metadata, feature views and lineage facts (see the module docstring)."""

    _engine: Engine
    uri: str

    # ------------------------------------------------------------------ datasets and partitions
    def record_writes(self, writes: Sequence[PartitionWrite]) -> None:
        """Record what one lake write touched, in one transaction: appended partitions add their
        files, rows and bytes and widen their time range; replaced ones (a day rewritten) take the
        new values. Each partition remembers the run that wrote it last."""
        if not writes:
            return
        now = now_us()
        p = schema.partitions
        appended = [_partition_values(w, now) for w in writes if not w.replaced]
        replaced = [_partition_values(w, now) for w in writes if w.replaced]
        datasets = sorted({(w.zone, w.dataset) for w in writes})
        ds = dialect_insert(self._engine, schema.datasets)
        ds = ds.on_conflict_do_update(
            index_elements=["zone", "dataset"], set_={"updated_at": ds.excluded.updated_at}
        )
        lo = sa.func.min if is_sqlite(self._engine) else sa.func.least
        hi = sa.func.max if is_sqlite(self._engine) else sa.func.greatest
        add = dialect_insert(self._engine, p)
        new = add.excluded
        add = add.on_conflict_do_update(
            index_elements=["zone", "dataset", "key"],
            set_={
                "files": p.c.files + new.files,
                "rows": p.c.rows + new.rows,
                "bytes": p.c.bytes + new.bytes,
                "first_ts": lo(sa.func.coalesce(p.c.first_ts, new.first_ts), new.first_ts),
                "last_ts": hi(sa.func.coalesce(p.c.last_ts, new.last_ts), new.last_ts),
                "run_id": new.run_id,
                "updated_at": new.updated_at,
            },
        )
        put = dialect_insert(self._engine, p)
        put = put.on_conflict_do_update(
            index_elements=["zone", "dataset", "key"],
            set_={
                **{k: put.excluded[k] for k in ("files", "rows", "bytes", "run_id", "updated_at")},
                # a replace that does not know the range (retention's, beside files written since) keeps it
                **{k: sa.func.coalesce(put.excluded[k], p.c[k]) for k in ("first_ts", "last_ts")},
            },
        )
        label = ", ".join(f"{z}/{d}" for z, d in datasets)
        with write_tx(self._engine, f"recording the partitions written to {label}") as conn:
            conn.execute(
                ds, [{"zone": z, "dataset": d, "created_at": now, "updated_at": now} for z, d in datasets]
            )
            if appended:
                conn.execute(add, _merged(appended))
            if replaced:
                conn.execute(put, _merged(replaced))

    def datasets(self, zone: str | None = None) -> list[dict[str, Any]]:
        """Recorded lake datasets with their totals: zone, dataset, partitions, files, rows, bytes,
        first_ts, last_ts (datetimes), updated_at, by zone then name."""
        p, d = schema.partitions, schema.datasets
        totals = (
            sa.select(
                p.c.zone,
                p.c.dataset,
                sa.func.count().label("partitions"),
                sa.func.sum(p.c.files).label("files"),
                sa.func.sum(p.c.rows).label("rows"),
                sa.func.sum(p.c.bytes).label("bytes"),
                sa.func.min(p.c.first_ts).label("first_ts"),
                sa.func.max(p.c.last_ts).label("last_ts"),
            )
            .group_by(p.c.zone, p.c.dataset)
            .subquery()
        )
        query = (
            sa.select(d.c.zone, d.c.dataset, d.c.updated_at, totals)
            .outerjoin(totals, sa.and_(totals.c.zone == d.c.zone, totals.c.dataset == d.c.dataset))
            .order_by(d.c.zone, d.c.dataset)
        )
        if zone is not None:
            query = query.where(d.c.zone == zone)
        with read_tx(self._engine, "listing datasets") as conn:
            rows = conn.execute(query).mappings().all()
        return [_dataset_row(row) for row in rows]

    # ------------------------------------------------------------------ series metadata
    def search_series(
        self, *, tags: Mapping[str, str] | None = None, text: str = "", prefix: str = "", limit: int = 100
    ) -> list[SeriesInfo]:
        """Series carrying every tag of ``tags``, matching ``text`` and whose id starts with ``prefix``,
        by id, at most ``limit``. A series matches ``text`` when its id starts with it, or when every
        word of ``text`` starts a word of its description (any case: ``kitch`` finds "Kitchen plugs").

        A tag key that no series carries raises :class:`~sparkhu.errors.NotFoundError` (a typo
        would otherwise look like an empty answer).
        """
        check_limit(limit)
        wanted = check_tags(tags or {}, "tags")
        s, t, w = schema.series, schema.series_tags, schema.series_words
        query = sa.select(s).order_by(s.c.series_id).limit(limit)
        if wanted:  # driven by the tag index: the first tag joined, the others as filters
            (key, value), *others = wanted.items()
            first = t.alias("first_tag")
            # ordered by the tag index's own series_id: its (key, value, series_id) range is walked in
            # order and the walk stops at ``limit`` (no sort of every series carrying the tag)
            query = (
                query.join(first, first.c.series_id == s.c.series_id)
                .where(first.c.key == key, first.c.value == value)
                .order_by(None)
                .order_by(first.c.series_id)
            )
            for key, value in others:
                query = query.where(
                    s.c.series_id.in_(sa.select(t.c.series_id).where(t.c.key == key, t.c.value == value))
                )
        if text:
            terms = words(text)
            matched = None
            if terms:  # the first word drives the index; the others filter (no nested compound: SQLite)
                matched = sa.select(w.c.series_id).where(w.c.word >= terms[0], w.c.word < terms[0] + "{")
                for term in terms[1:]:
                    matched = matched.where(
                        w.c.series_id.in_(
                            sa.select(w.c.series_id).where(w.c.word >= term, w.c.word < term + "{")
                        )
                    )
            by_id = sa.select(s.c.series_id).where(s.c.series_id >= text, s.c.series_id < text + "\uffff")
            found_ids = sa.union(by_id, matched) if matched is not None else by_id
            query = query.where(s.c.series_id.in_(found_ids))
        if prefix:
            query = query.where(sa.func.substr(s.c.series_id, 1, len(prefix)) == prefix)
        with read_tx(self._engine, "searching series") as conn:
            found = [series_info(row._mapping) for row in conn.execute(query)]
            if not found and wanted:
                known = set(conn.execute(sa.select(t.c.key).where(t.c.key.in_(list(wanted)))).scalars())
                unknown = [key for key in wanted if key not in known]
                if unknown:
                    raise NotFoundError(
                        f"tag {unknown[0]!r} is on no series; list the tags with `sparkhu series tags`"
                    )
        return found

    def tag_keys(self) -> list[tuple[str, int]]:
        """Every tag key with the number of series carrying it, by key."""
        t = schema.series_tags
        with read_tx(self._engine, "listing tags") as conn:
            rows = conn.execute(sa.select(t.c.key, sa.func.count()).group_by(t.c.key).order_by(t.c.key)).all()
        return [(key, int(count)) for key, count in rows]

    def tag_series(
        self, series_id: str, add: Mapping[str, Any] | None = None, remove: Sequence[str] = ()
    ) -> dict[str, str]:
        """Add (or change) tags ``add`` and remove tags ``remove`` of one series; returns its tags.

        Removing a tag the series does not carry raises :class:`~sparkhu.errors.InputError`.
        """
        tags = dict(self.series(series_id).tags)
        for key in remove:
            if key not in tags:
                raise InputError(
                    f"series {series_id!r} has no tag {key!r} (its tags: {', '.join(tags) or 'none'})"
                )
            del tags[key]
        tags.update(check_tags(add or {}, f"tags of {series_id}"))
        self.apply_series_meta([SeriesMeta(series_id, tags=tags)])
        return tags

    def describe_series(self, series_id: str, description: str | None) -> None:
        """Set (or, ``None``, clear) the free-form description of one series."""
        self.series(series_id)  # NotFoundError for an unknown id
        self.apply_series_meta([SeriesMeta(series_id, description=description)])

    def apply_series_meta(self, records: Sequence[SeriesMeta]) -> int:
        """Apply edits or an import of series metadata, all or nothing; returns how many series changed.

        Every record is checked before anything is written: its series must be in the catalog, its
        tags well formed, its upstream series known and free of cycles (with the links already
        stored). The first fault raises :class:`~sparkhu.errors.InputError` naming the record.
        """
        checked = [_check_meta(record) for record in records]
        seen: dict[str, str] = {}
        for record in checked:
            if record.series_id in seen:
                raise InputError(
                    f"series {record.series_id!r} appears twice "
                    f"(first at {seen[record.series_id] or 'an earlier record'})",
                    source=record.origin or None,
                    field="series_id",
                )
            seen[record.series_id] = record.origin
        if not checked:
            return 0
        s, t, links = schema.series, schema.series_tags, schema.series_links
        with write_tx(self._engine, f"saving the metadata of {len(checked)} series") as conn:
            ids = {r.series_id for r in checked} | {
                u for r in checked if r.upstream is not UNSET for u in r.upstream
            }
            stored = {
                row.series_id: row.tags
                for chunk in _chunks(sorted(ids))
                for row in conn.execute(sa.select(s.c.series_id, s.c.tags).where(s.c.series_id.in_(chunk)))
            }
            described = {r.series_id: r.description for r in checked if r.description is not UNSET}
            for record in checked:
                if record.series_id not in stored:
                    raise InputError(
                        f"series {record.series_id!r} is not in the catalog {self.uri}; ingest it first",
                        source=record.origin or None,
                        field="series_id",
                    )
                if record.upstream is not UNSET:
                    dangling = [u for u in record.upstream if u not in stored]
                    if dangling:
                        raise InputError(
                            f"upstream series {dangling[0]!r} of {record.series_id!r} is not in the catalog",
                            source=record.origin or None,
                            field="upstream",
                        )
            _check_acyclic(conn, checked)
            now = now_us()
            for record in checked:
                values: dict[str, Any] = {"updated_at": now}
                if record.description is not UNSET:
                    values["description"] = record.description
                if record.unit is not UNSET:
                    values["unit"] = record.unit
                if record.tags is not UNSET:
                    extra = (stored[record.series_id] or {}).get(EXTRA_KEY)
                    values["tags"] = {**record.tags, **({EXTRA_KEY: extra} if extra else {})}
                conn.execute(sa.update(s).where(s.c.series_id == record.series_id).values(**values))
            _replace_rows(
                conn,
                t,
                [r.series_id for r in checked if r.tags is not UNSET],
                [
                    {"series_id": r.series_id, "key": k, "value": v}
                    for r in checked
                    if r.tags is not UNSET
                    for k, v in r.tags.items()
                ],
            )
            index_words(conn, described)
            _replace_rows(
                conn,
                links,
                [r.series_id for r in checked if r.upstream is not UNSET],
                [
                    {"series_id": r.series_id, "upstream_id": u}
                    for r in checked
                    if r.upstream is not UNSET
                    for u in r.upstream
                ],
            )
        return len(checked)

    def index_series_words(self) -> int:
        """Rebuild the text index of every series (the words of its id and description), in one
        transaction; returns how many series. Series created by ingestion alone are found by id
        prefix until this runs (``sparkhu meta reindex``) or their metadata is edited."""
        s = schema.series
        with write_tx(self._engine, "indexing the words of every series") as conn:
            rows = conn.execute(sa.select(s.c.series_id, s.c.description)).all()
            conn.execute(sa.delete(schema.series_words))
            for start in range(0, len(rows), 10_000):
                index_words(conn, dict(rows[start : start + 10_000]))
        return len(rows)

    def export_series_meta(self, *, prefix: str = "") -> list[dict[str, Any]]:
        """series_id, unit, description, tags and upstream of every series (with ``prefix``), by id:
        what :meth:`apply_series_meta` takes back."""
        s, links = schema.series, schema.series_links
        query = sa.select(s.c.series_id, s.c.unit, s.c.description, s.c.tags).order_by(s.c.series_id)
        if prefix:
            query = query.where(sa.func.substr(s.c.series_id, 1, len(prefix)) == prefix)
        with read_tx(self._engine, "exporting series metadata") as conn:
            rows = conn.execute(query).all()
            upstream: dict[str, list[str]] = {}
            for sid, up in conn.execute(
                sa.select(links.c.series_id, links.c.upstream_id).order_by(links.c.upstream_id)
            ):
                upstream.setdefault(sid, []).append(up)
        return [
            {
                "series_id": sid,
                "unit": unit,
                "description": description,
                "tags": {k: v for k, v in (tags or {}).items() if k != EXTRA_KEY},
                "upstream": upstream.get(sid, []),
            }
            for sid, unit, description, tags in rows
        ]

    def series_links(self, series_id: str) -> tuple[list[str], list[str]]:
        """(upstream, downstream) series declared for ``series_id``."""
        links = schema.series_links
        with read_tx(self._engine, f"reading the links of {series_id!r}") as conn:
            up = (
                conn.execute(sa.select(links.c.upstream_id).where(links.c.series_id == series_id))
                .scalars()
                .all()
            )
            down = (
                conn.execute(sa.select(links.c.series_id).where(links.c.upstream_id == series_id))
                .scalars()
                .all()
            )
        return sorted(up), sorted(down)

    # ------------------------------------------------------------------ feature views
    def put_feature_view(self, name: str, body: Mapping[str, Any], description: str | None = None) -> int:
        """Save a feature view definition; returns its version: the stored one when ``body`` is the
        same as the newest version's, else a new version (versions are never changed)."""
        check_text(name, "feature view name")
        doc = check_json(body, f"feature view {name}")
        f = schema.feature_views
        with write_tx(self._engine, f"saving feature view {name!r}") as conn:
            newest = conn.execute(
                sa.select(f.c.version, f.c.body).where(f.c.name == name).order_by(f.c.version.desc()).limit(1)
            ).first()
            if newest is not None and newest.body == doc:
                return int(newest.version)
            version = 1 if newest is None else int(newest.version) + 1
            conn.execute(
                sa.insert(f),
                [
                    {
                        "name": name,
                        "version": version,
                        "body": doc,
                        "description": description,
                        "created_at": now_us(),
                    }
                ],
            )
        return version

    def feature_view(self, name: str, version: int | None = None) -> dict[str, Any]:
        """One feature view (the newest version unless ``version``): name, version, body, description,
        created_at. :class:`~sparkhu.errors.NotFoundError` when there is none."""
        f = schema.feature_views
        query = sa.select(f).where(f.c.name == name).order_by(f.c.version.desc()).limit(1)
        if version is not None:
            query = query.where(f.c.version == version)
        with read_tx(self._engine, f"reading feature view {name!r}") as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            which = f"{name!r} version {version}" if version is not None else repr(name)
            raise NotFoundError(
                f"feature view {which} is not defined; list them with `sparkhu feature-views list`"
            )
        return {**row, "created_at": from_us(row["created_at"])}

    def feature_views(self) -> list[dict[str, Any]]:
        """The newest version of every feature view, by name (with ``versions``: how many)."""
        f = schema.feature_views
        newest = (
            sa.select(f.c.name, sa.func.max(f.c.version).label("version"), sa.func.count().label("versions"))
            .group_by(f.c.name)
            .subquery()
        )
        query = (
            sa.select(f, newest.c.versions)
            .join(newest, sa.and_(newest.c.name == f.c.name, newest.c.version == f.c.version))
            .order_by(f.c.name)
        )
        with read_tx(self._engine, "listing feature views") as conn:
            rows = conn.execute(query).mappings().all()
        return [{**row, "created_at": from_us(row["created_at"])} for row in rows]

    def link_feature_view(self, run_id: str, name: str, version: int) -> int:
        """Record on every model version made by run ``run_id`` that it was trained on feature view
        ``name`` ``version``; returns how many versions."""
        m = schema.models
        stmt = (
            sa.update(m).where(m.c.run_id == run_id).values(feature_view=name, feature_view_version=version)
        )
        with write_tx(self._engine, f"linking the models of run {run_id!r} to feature view {name!r}") as conn:
            return conn.execute(stmt).rowcount

    def link_model_series(self, name: str, version: str, series_ids: Sequence[str]) -> None:
        """Record that model ``name`` ``version`` (a global model) was trained on ``series_ids``: it is
        in the lineage of each of them."""
        check_text(name, "model name")
        check_text(version, "model version")
        ms = schema.model_series
        rows = [{"name": name, "version": version, "series_id": sid} for sid in sorted(set(series_ids))]
        with write_tx(self._engine, f"linking model {name} {version} to {len(rows)} series") as conn:
            conn.execute(sa.delete(ms).where(ms.c.name == name, ms.c.version == version))
            if rows:
                conn.execute(sa.insert(ms), rows)

    # ------------------------------------------------------------------ lineage
    def lineage_facts(self, series_id: str) -> dict[str, Any]:
        """Everything the catalog knows of where ``series_id`` comes from and what was made of it, in a
        few indexed queries: the series, its sources and watermarks, the newest run record of each
        name for the series and for its dataset's pipeline tasks (with how many there are), the
        datasets those read and wrote (with totals), model versions (its own, and the global ones trained
        on it) and the runs that made them,
        forecasts by model, retention actions on its datasets, declared upstream and downstream series.
        :class:`~sparkhu.errors.NotFoundError` for an unknown series."""
        sid = SeriesId.parse(series_id)
        q = _lineage_queries()
        raw = f"{sid.source}_{sid.measurement}"
        with read_tx(self._engine, f"reading the lineage of {series_id!r}") as conn:
            row = conn.execute(q.series, {"sid": series_id}).first()
            if row is None:
                raise NotFoundError(
                    f"series {series_id!r} is not in the catalog {self.uri}; "
                    "list them with `sparkhu series search`"
                )
            facts: dict[str, Any] = {"series": series_info(row._mapping)}
            facts["sources"] = _source_rows(
                conn, conn.execute(q.sources, {"source": sid.source, "measurement": sid.measurement})
            )
            facts["series_runs"] = _ranked(conn.execute(q.series_runs, {"sid": series_id}))
            # the task-day runs of the series' DAG (kind pipeline, named <dataset>/<task>)
            facts["task_runs"] = _ranked(conn.execute(q.task_runs, {"lo": raw + "/", "hi": raw + "0"}))
            models = sorted(
                (dict(x) for x in conn.execute(q.models, {"sid": series_id}).mappings()),
                key=lambda x: (x["created_at"], x["name"], x["version"]),
            )
            facts["models"] = models
            train_ids = sorted({x["run_id"] for x in models if x["run_id"]})
            facts["train_runs"] = [
                dict(x)
                for chunk in _chunks(train_ids)
                for x in conn.execute(q.runs_by_id, {"ids": chunk}).mappings()
            ]
            facts["forecasts"] = [dict(x) for x in conn.execute(q.forecasts, {"sid": series_id}).mappings()]
            names = {f"raw/{raw}"}
            for run in facts["task_runs"] + facts["train_runs"]:
                params = run["params"] or {}
                names.update(str(x) for x in params.get("inputs", []) + params.get("outputs", []))
                if isinstance(params.get("dataset"), str) and "/" in params["dataset"]:
                    names.add(params["dataset"])
            facts["datasets"] = _dataset_totals(conn, sorted(names))
            facts["retention"] = _retention_actions(conn, sorted(names), series_id)
            links = conn.execute(q.links, {"sid": series_id}).all()
            facts["upstream"] = sorted(other for way, other in links if way == "up")
            facts["downstream"] = sorted(other for way, other in links if way == "down")
        return facts

    if TYPE_CHECKING:

        def series(self, series_id: str) -> SeriesInfo: ...


# ---------------------------------------------------------------------- helpers


def _chunks(items: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield list(items[start : start + CHUNK])


def _partition_values(w: PartitionWrite, now: int) -> dict[str, Any]:
    return {
        "zone": w.zone,
        "dataset": w.dataset,
        "key": w.key,
        "files": w.files,
        "rows": w.rows,
        "bytes": w.bytes,
        "first_ts": w.first_ts,
        "last_ts": w.last_ts,
        "run_id": w.run_id,
        "updated_at": now,
    }


def _merged(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per partition (an upsert may not touch a row twice): several files of one write add up."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["zone"], row["dataset"], row["key"])
        if key not in out:
            out[key] = dict(row)
            continue
        have = out[key]
        for name in ("files", "rows", "bytes"):
            have[name] += row[name]
        firsts = [v for v in (have["first_ts"], row["first_ts"]) if v is not None]
        lasts = [v for v in (have["last_ts"], row["last_ts"]) if v is not None]
        have["first_ts"], have["last_ts"] = (min(firsts) if firsts else None), (max(lasts) if lasts else None)
    return list(out.values())


def _newest_runs_query(*where: Any) -> sa.Select[Any]:
    """The newest run of each (kind, name) among those matching ``where``, with ``runs``: how many
    match (and ``n``, dropped by :func:`_ranked`)."""
    r = schema.runs
    ranked = (
        sa.select(
            r,
            sa.func.row_number()
            .over(partition_by=(r.c.kind, r.c.name), order_by=(r.c.started_at.desc(), r.c.run_id.desc()))
            .label("n"),
            sa.func.count().over(partition_by=(r.c.kind, r.c.name)).label("runs"),
        )
        .where(*where)
        .subquery()
    )
    return sa.select(ranked).where(ranked.c.n == 1).order_by(ranked.c.kind, ranked.c.name)


def _ranked(result: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "n"} for row in result.mappings()]


@dataclass(frozen=True)
class _LineageQueries:
    """The statements of :meth:`MetadataStore.lineage_facts`, built once with bound parameters: a
    lineage then costs the queries, not the building of their expressions (most of its time before)."""

    series: Any
    sources: Any
    watermarks: Any
    series_runs: Any
    task_runs: Any
    models: Any
    runs_by_id: Any
    forecasts: Any
    links: Any


@functools.cache
def _lineage_queries() -> _LineageQueries:
    s, r, m, ms = schema.series, schema.runs, schema.models, schema.model_series
    src, w, fr = schema.sources, schema.watermarks, schema.forecasts_raw
    links = schema.series_links
    sid: Any = sa.bindparam("sid")
    own = sa.select(m).where(m.c.series_id == sid)  # the series' own models
    shared = (  # global models trained on it among others
        sa.select(m)
        .join(ms, sa.and_(ms.c.name == m.c.name, ms.c.version == m.c.version))
        .where(ms.c.series_id == sid)
    )
    return _LineageQueries(
        series=sa.select(s).where(s.c.series_id == sid),
        sources=sa.select(src)
        .where(
            sa.or_(
                src.c.name == sa.bindparam("source"),
                sa.and_(
                    src.c.config["source"].as_string() == sa.bindparam("source"),
                    src.c.config["measurement"].as_string() == sa.bindparam("measurement"),
                ),
            )
        )
        .order_by(src.c.name),
        watermarks=sa.select(w.c.owner, w.c.key, w.c.position).where(
            w.c.owner.in_(sa.bindparam("owners", expanding=True))
        ),
        series_runs=_newest_runs_query(r.c.series_id == sid),
        task_runs=_newest_runs_query(
            r.c.kind == "pipeline", r.c.name >= sa.bindparam("lo"), r.c.name < sa.bindparam("hi")
        ),
        models=sa.union_all(own, shared),
        runs_by_id=sa.select(r).where(r.c.run_id.in_(sa.bindparam("ids", expanding=True))),
        forecasts=sa.select(
            fr.c.model,
            sa.func.count().label("rows"),
            sa.func.min(fr.c.origin_ts).label("first_origin"),
            sa.func.max(fr.c.origin_ts).label("last_origin"),
            sa.func.max(fr.c.target_ts).label("last_target"),
        )
        .where(fr.c.series_id == sid)
        .group_by(fr.c.model)
        .order_by(fr.c.model),
        links=sa.union_all(
            sa.select(sa.literal_column("'up'"), links.c.upstream_id).where(links.c.series_id == sid),
            sa.select(sa.literal_column("'down'"), links.c.series_id).where(links.c.upstream_id == sid),
        ),
    )


def _dataset_row(row: Any) -> dict[str, Any]:
    return {
        "zone": row["zone"],
        "dataset": row["dataset"],
        "partitions": int(row["partitions"] or 0),
        "files": int(row["files"] or 0),
        "rows": int(row["rows"] or 0),
        "bytes": int(row["bytes"] or 0),
        "first_ts": from_us(row["first_ts"]),
        "last_ts": from_us(row["last_ts"]),
        "updated_at": from_us(row["updated_at"]),
    }


def _dataset_totals(conn: Connection, names: Sequence[str]) -> list[dict[str, Any]]:
    """Totals of the recorded datasets among ``zone/dataset`` ``names`` (unrecorded ones are left out):
    one statement, a primary-key range per dataset."""
    pairs = [tuple(name.split("/", 1)) for name in sorted(set(names)) if "/" in name]
    if not pairs:
        return []
    params = {
        f"{k}{i}": v for i, pair in enumerate(pairs) for k, v in zip(("zone", "dataset"), pair, strict=True)
    }
    rows = conn.execute(_totals_query(len(pairs)), params).mappings()
    return [
        _dataset_row({**row, "zone": pairs[row["n"]][0], "dataset": pairs[row["n"]][1]})
        for row in rows
        if row["partitions"]
    ]


@functools.cache
def _totals_query(n: int) -> Any:
    """The totals of ``n`` datasets (parameters ``zone<i>``, ``dataset<i>``), one row each, in order."""
    p = schema.partitions

    def one(i: int) -> Any:
        zone: Any = sa.bindparam(f"zone{i}")
        dataset: Any = sa.bindparam(f"dataset{i}")
        return sa.select(
            sa.literal_column(str(i)).label("n"),  # no parameter in a select list: PostgreSQL types them
            sa.func.count().label("partitions"),
            sa.func.sum(p.c.files).label("files"),
            sa.func.sum(p.c.rows).label("rows"),
            sa.func.sum(p.c.bytes).label("bytes"),
            sa.func.min(p.c.first_ts).label("first_ts"),
            sa.func.max(p.c.last_ts).label("last_ts"),
            sa.func.max(p.c.updated_at).label("updated_at"),
        ).where(p.c.zone == zone, p.c.dataset == dataset)

    union = sa.union_all(*(one(i) for i in range(n))).subquery()
    return sa.select(union).order_by(union.c.n)


def _retention_actions(conn: Connection, names: Sequence[str], series_id: str) -> list[dict[str, Any]]:
    """The newest retention actions applied (audit entries) to the datasets ``names`` (the dataset or
    a partition of it) or to the series: one statement, ranges of the target index."""
    names = sorted(set(names))
    params: dict[str, Any] = {"sid": series_id}
    for i, name in enumerate(names):
        params.update({f"exact{i}": name, f"lo{i}": name + "/", f"hi{i}": name + "0"})
    rows = conn.execute(_retention_query(len(names)), params).mappings()
    return [{**row, "at": from_us(row["at"])} for row in rows]


@functools.cache
def _retention_query(n: int) -> Any:
    """The newest actions applied to ``n`` dataset names (``exact<i>``, or ``lo<i>`` <= target <
    ``hi<i>``) or the series (``sid``): a union of target-index ranges, newest first. (One ``WHERE``
    of ORs let SQLite walk the audit log backwards by id instead, filtering every entry.)"""
    a = schema.audit_log
    ranges = [a.c.target == sa.bindparam("sid")]
    for i in range(n):
        ranges.append(a.c.target == sa.bindparam(f"exact{i}"))
        ranges.append(sa.and_(a.c.target >= sa.bindparam(f"lo{i}"), a.c.target < sa.bindparam(f"hi{i}")))
    found = sa.union(*(sa.select(a).where(where) for where in ranges)).subquery()
    return (
        sa.select(found)
        .where(found.c.action.notin_(["run.start", "run.finish", "skip"]))  # the actions applied
        .order_by(found.c.id.desc())
        .limit(LINEAGE_RUNS)
    )


def source_rows(conn: Connection, feeding: SeriesId | None = None) -> list[dict[str, Any]]:
    """Every source (or those that may feed the series ``feeding``: named after its source, or with
    its source and measurement in their settings) with its watermarks (``{key: position}``)."""
    src = schema.sources
    query = sa.select(src).order_by(src.c.name)
    if feeding is not None:
        query = query.where(
            sa.or_(
                src.c.name == feeding.source,
                sa.and_(
                    src.c.config["source"].as_string() == feeding.source,
                    src.c.config["measurement"].as_string() == feeding.measurement,
                ),
            )
        )
    return _source_rows(conn, conn.execute(query))


def _source_rows(conn: Connection, result: Any) -> list[dict[str, Any]]:
    """The sources of ``result`` (rows of ``sources``) with their watermarks."""
    rows = [dict(x) for x in result.mappings()]
    if not rows:
        return []
    marks: dict[str, dict[str, Any]] = {}
    for owner, key, position in conn.execute(
        _lineage_queries().watermarks, {"owners": [x["name"] for x in rows]}
    ):
        marks.setdefault(owner, {})[key] = position
    for row in rows:
        row["created_at"], row["updated_at"] = from_us(row["created_at"]), from_us(row["updated_at"])
        row["watermarks"] = marks.get(row["name"], {})
    return rows


def _check_meta(record: SeriesMeta) -> SeriesMeta:
    """``record`` with its fields checked and normalised; :class:`InputError` naming it otherwise."""
    where = record.origin or None
    try:
        SeriesId.parse(record.series_id)
    except InputError as exc:
        raise InputError(exc.reason, source=where, field="series_id") from exc
    out = SeriesMeta(record.series_id, origin=record.origin)
    if record.description is not UNSET:
        if record.description is not None and not isinstance(record.description, str):
            raise InputError(
                f"description must be text, got {record.description!r}", source=where, field="description"
            )
        out.description = record.description or None
    if record.unit is not UNSET:
        if record.unit is not None and not isinstance(record.unit, str):
            raise InputError(f"unit must be text, got {record.unit!r}", source=where, field="unit")
        out.unit = record.unit or None
    if record.tags is not UNSET:
        try:
            out.tags = check_tags(record.tags or {}, "tags")
        except InputError as exc:
            raise InputError(f"{record.series_id}: {exc.reason}", source=where, field="tags") from exc
    if record.upstream is not UNSET:
        upstream = record.upstream or []
        if isinstance(upstream, str) or not isinstance(upstream, list | tuple):
            raise InputError(
                f"upstream must be a list of series ids, got {upstream!r}", source=where, field="upstream"
            )
        for up in upstream:
            try:
                SeriesId.parse(up)
            except InputError as exc:
                raise InputError(f"upstream {up!r}: {exc.reason}", source=where, field="upstream") from exc
            if up == record.series_id:
                raise InputError(
                    f"series {up!r} cannot be its own upstream (a cycle)", source=where, field="upstream"
                )
        out.upstream = sorted(set(upstream))
    return out


def _check_acyclic(conn: Connection, records: Sequence[SeriesMeta]) -> None:
    """Raise :class:`InputError` naming the record whose upstream links would close a cycle, walking
    the stored links as changed by ``records`` (only the part reachable from the new links)."""
    changed = {r.series_id: list(r.upstream) for r in records if r.upstream is not UNSET}
    if not changed:
        return
    links = schema.series_links
    known: dict[str, list[str]] = dict(changed)

    def upstream_of(ids: list[str]) -> None:
        missing = sorted({i for i in ids if i not in known})
        for chunk in _chunks(missing):
            for sid in chunk:
                known[sid] = []
            for sid, up in conn.execute(
                sa.select(links.c.series_id, links.c.upstream_id).where(links.c.series_id.in_(chunk))
            ):
                known[sid].append(up)

    for record in records:
        if record.upstream is UNSET:
            continue
        seen: set[str] = set()
        frontier = list(record.upstream)
        while frontier:
            upstream_of(frontier)
            nxt = []
            for sid in frontier:
                if sid == record.series_id:
                    raise InputError(
                        f"upstream links of {record.series_id!r} form a cycle "
                        "(it is upstream of itself through "
                        f"{', '.join(sorted(seen)) or 'its own links'})",
                        source=record.origin or None,
                        field="upstream",
                    )
                if sid not in seen:
                    seen.add(sid)
                    nxt.extend(known.get(sid, []))
            frontier = nxt


def index_words(conn: Connection, descriptions: Mapping[str, str | None]) -> None:
    """Replace the word index of the series of ``descriptions``: the words of each id and description."""
    rows = [
        {"word": word, "series_id": sid}
        for sid, text in descriptions.items()
        for word in words(f"{sid} {text or ''}")
    ]
    _replace_rows(conn, schema.series_words, list(descriptions), rows)


def _replace_rows(
    conn: Connection, table: sa.Table, series_ids: Sequence[str], rows: list[dict[str, Any]]
) -> None:
    """Delete the rows of ``series_ids`` in ``table`` and insert ``rows`` instead."""
    for chunk in _chunks(list(series_ids)):
        conn.execute(sa.delete(table).where(table.c.series_id.in_(chunk)))
    if rows:
        conn.execute(sa.insert(table), rows)
