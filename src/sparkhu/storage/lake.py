"""The lake: partitioned Parquet datasets of points, read through DuckDB.

Layout under the lake root (a local folder, ``file://`` URI or any pyarrow filesystem URI)::

    <zone>/<dataset>/date=YYYY-MM-DD/part-<time_ns>-<uuid8>.parquet                  (layout="date")
    <zone>/<dataset>/year=YYYY/month=MM/day=dd/hour=HH/part-<time_ns>-<uuid8>.parquet (layout="hourly",
                                                                                     Kafka Connect HDFS3)

Zones: ``raw`` (as ingested), ``validated``, ``clean``, ``features``, ``analysis``,
``quarantine`` (bad records with their reason). Partitions follow the point's UTC timestamp.

Writes are atomic (a temporary ``.tmp`` file renamed into place), so a reader never sees half
a file and a crash leaves only ``.tmp`` files, which readers ignore (as they ignore names
starting with ``.`` or ``_``). File names sort by write order and carry the file's row count
(``part-<time_ns>-<uuid8>-n<rows>.parquet``, see :func:`~sparkhu.storage._parquet.name_rows`), so
counting rows opens no file. Appending the same points twice
is harmless: reads de-duplicate on (series_id, ts) keeping the value of the latest file, and
:meth:`Lake.compact` rewrites a partition as one sorted file with the duplicates gone.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sparkhu.config import LAKE_SCHEMES, fsspec_schemes
from sparkhu.errors import ConfigError, LakeError
from sparkhu.plugins import Registry
from sparkhu.series import QUARANTINE_SCHEMA, empty_points
from sparkhu.storage._parquet import (
    LAYOUTS,
    FileNamer,
    Layout,
    check_days,
    conform_points,
    conform_quarantine,
    conform_table,
    file_uri,
    is_data_file,
    name_ns,
    name_rows,
    point_filters,
    scan_arrow,
    sort_points,
    sorted_points,
    split_partitions,
    walk_partitions,
    write_atomic,
)
from sparkhu.storage.writes import TIME_COLUMNS, WriteListener, partition_writes, tell, time_range
from sparkhu.timeaxis import TS_TYPE, to_us

BUCKET_SCHEMA = pa.schema(
    [
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("min", pa.float64()),
        pa.field("max", pa.float64()),
        pa.field("mean", pa.float64()),
        pa.field("last", pa.float64()),
        pa.field("count", pa.int64(), nullable=False),
    ]
)
"""Columns of :meth:`Lake.read_buckets`."""

ZONES = ("raw", "validated", "clean", "features", "analysis", "quarantine")

FilesystemOpener = Callable[[str], tuple[pafs.FileSystem, str]]
"""``opener(uri) -> (filesystem, base path inside it)`` for one URI scheme of a lake root."""

FILESYSTEMS: Registry[FilesystemOpener] = Registry("lake filesystem", group="sparkhu.filesystems")
"""Lake root URI scheme → opener. pyarrow's filesystems are built in; a third party adds a scheme
(an fsspec implementation wrapped in ``pyarrow.fs.PyFileSystem(FSSpecHandler(fs))``, say) through an
entry point of the ``sparkhu.filesystems`` group."""

for _scheme in LAKE_SCHEMES:
    FILESYSTEMS.register(_scheme, pafs.FileSystem.from_uri)


def open_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem of ``uri`` and the path inside it.

    A plain path is a local one. A URI's scheme is looked up in :data:`FILESYSTEMS` (pyarrow's
    own, then plug-ins'); a scheme only fsspec knows (``memory``, ``sftp``, ``http``...) is
    opened through fsspec, wrapped for pyarrow. An unknown scheme, or one whose fsspec package is
    not installed, raises :class:`ConfigError` naming it.

    >>> fs, path = open_filesystem("memory://study/p.txt")
    >>> fs.type_name, path
    ('py::fsspec+memory', '/study/p.txt')
    >>> try:
    ...     open_filesystem("nosuch://x")
    ... except ConfigError as exc:
    ...     print(str(exc).split(";")[0])
    unknown URI scheme 'nosuch' in 'nosuch://x'
    """
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    scheme = uri.split("://", 1)[0]
    if scheme in FILESYSTEMS:
        return FILESYSTEMS.get(scheme)(uri)
    if scheme not in fsspec_schemes():
        known = ", ".join(FILESYSTEMS.keys())
        raise ConfigError(
            f"unknown URI scheme {scheme!r} in {uri!r}; "
            f"known: {known}, or a scheme of an installed fsspec implementation"
        )
    import fsspec.core

    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except ImportError as exc:  # the scheme's own package (gcsfs, sshfs...) is missing
        raise ConfigError(f"cannot open {uri!r}: {exc}") from exc
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


_DATASET_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_MAX_CANDIDATES = 1024  # a bounded read probes at most this many partition dirs, else it walks
_ARROW_ERRORS = (OSError, pa.ArrowException)
_FEW_SERIES = 1_000  # a read of at most this many named series runs one query (no ENUM of the ids)
_ROW_CACHE = 1_000_000  # row counts of data files remembered by a lake object
_KEY_RE = {
    "date": re.compile(r"date=(\d{4})-(\d{2})-(\d{2})"),
    "hourly": re.compile(r"year=(\d{4})/month=(\d{2})/day=(\d{2})/hour=(\d{2})"),
}


@functools.lru_cache(maxsize=1 << 17)
def key_start_us(layout: str, key: str) -> int | None:
    """The first µs of partition ``key`` of ``layout``; None when it is no key of it.

    >>> key_start_us("hourly", "year=1970/month=01/day=01/hour=01"), key_start_us("date", "date=1970-02-30")
    (3600000000, None)
    """
    match = _KEY_RE[layout].fullmatch(key)
    if match is None:
        return None
    try:
        return to_us(datetime(*map(int, match.groups()), tzinfo=UTC))  # type: ignore[arg-type, misc]
    except ValueError:  # month=13, day=30 of February...
        return None


@dataclass(frozen=True)
class PartitionInfo:
    """One partition of a dataset as it is on storage."""

    zone: str
    dataset: str
    key: str  # "date=2024-01-01" or "year=2024/month=01/day=01/hour=05"
    files: int
    rows: int
    """Rows of the readable files."""
    bytes: int
    corrupt: tuple[str, ...] = ()
    """Paths of the partition's files that are not readable Parquet (counted in ``files``, not ``rows``)."""

    @property
    def start(self) -> datetime:
        """The first instant (UTC) the partition covers; ValueError for a key of no layout.

        >>> PartitionInfo("raw", "meters", "year=2024/month=01/day=02/hour=05", 1, 1, 1).start.isoformat()
        '2024-01-02T05:00:00+00:00'
        """
        layout = LAYOUTS["date" if self.key.startswith("date=") else "hourly"]
        return layout.interval(layout.parse(self.key))[0]


def _sql(sql: str) -> Callable[[duckdb.DuckDBPyConnection, str, dict[str, Any]], pa.Table]:
    """A runner for :meth:`Lake._query` of one statement with ``{src}`` in it."""

    def run(cur: duckdb.DuckDBPyConnection, src: str, params: dict[str, Any]) -> pa.Table:
        return cur.sql(sql.format(src=src), params=params).to_arrow_table()

    return run


class Lake:
    """Partitioned Parquet datasets under one root URI.

    ``filesystem`` (optional) is a pyarrow filesystem in which ``root`` is a path; ``threads``
    bounds the parallel file writes (0: one per core). Safe to share between threads.

    >>> import tempfile
    >>> from sparkhu.series import points
    >>> with tempfile.TemporaryDirectory() as root:
    ...     lake = Lake(root)
    ...     _ = lake.write("raw", "meters", points("home/power/P", [0, 60_000_000], [1.0, 2.0]))
    ...     _ = lake.write("raw", "meters", points("home/power/P", [60_000_000], [2.5]))
    ...     [p.key for p in lake.partitions("raw", "meters")], lake.read("raw", "meters")["value"].to_pylist()
    (['date=1970-01-01'], [1.0, 2.5])
    """

    def __init__(
        self,
        root: str,
        *,
        layout: str = "date",
        filesystem: pafs.FileSystem | None = None,
        threads: int = 0,
        on_write: WriteListener | None = None,
    ) -> None:
        if layout not in LAYOUTS:
            raise LakeError(f"unknown lake layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
        root = os.fspath(root)
        self.root = root
        self.layout = layout
        self._layout = LAYOUTS[layout]
        self._threads = threads or os.cpu_count() or 1
        self.on_write = on_write
        """Told the partitions each write touched (not pickled: a worker's copy has none)."""
        if filesystem is not None:
            self._fs, base = filesystem, root
        elif "://" in root:
            try:
                self._fs, base = open_filesystem(root)
            except (*_ARROW_ERRORS, ValueError, ConfigError) as exc:
                raise LakeError(f"cannot open lake root {root!r}: {exc}") from exc
        else:
            self._fs, base = pafs.LocalFileSystem(), os.path.abspath(root)
        self._base = base.rstrip("/") or "/"
        # DuckDB reads local files itself (it would take * ? [ in a path for a glob)
        self._local = isinstance(self._fs, pafs.LocalFileSystem) and not any(c in self._base for c in "*?[")
        self._setup_runtime()

    def _setup_runtime(self) -> None:
        self._row_cache: dict[str, int] = {}
        self._namer = FileNamer()
        self._db_lock = threading.Lock()
        self._db: duckdb.DuckDBPyConnection | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_namer", "_db_lock", "_db", "_row_cache"):
            del state[name]
        state["on_write"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup_runtime()

    def __repr__(self) -> str:
        return f"Lake({self.root!r}, layout={self.layout!r})"

    # ---------------------------------------------------------------- writing

    def write(self, zone: str, dataset: str, table: pa.Table) -> list[str]:
        """Append points (POINT_SCHEMA) to ``zone/dataset``, one new file per touched partition.

        Returns the written paths. Atomic per file; vectorised (no per-point Python).
        """
        where = self._dataset_dir(zone, dataset, points=True)
        pts = conform_points(table, f"{zone}/{dataset}")
        return self._write_parts(where, split_partitions(pts, self._layout)) if pts.num_rows else []

    def split(self, zone: str, dataset: str, table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
        """``(partition key, points)`` of ``table`` (conformed to POINT_SCHEMA) per partition, key order.

        What :meth:`write` does before writing, for a writer that gathers partitions itself.
        """
        self._dataset_dir(zone, dataset, points=True)
        pts = conform_points(table, f"{zone}/{dataset}")
        return split_partitions(pts, self._layout) if pts.num_rows else iter(())

    def replace(self, zone: str, dataset: str, table: pa.Table, days: Sequence[date]) -> list[str]:
        """Replace the partitions of ``days`` with ``table`` (idempotent re-runs of a day).

        Every point of ``table`` must fall on one of ``days`` (UTC). New files are written
        first and the older files of those days deleted afterwards: a crash in between leaves
        duplicates that reads resolve to the new values, and a re-run completes the job.
        """
        where = self._dataset_dir(zone, dataset, points=True)
        label = f"{zone}/{dataset}"
        return self._replace_days(where, label, conform_points(table, label), days)

    def replace_table(self, zone: str, dataset: str, table: pa.Table, days: Sequence[date]) -> list[str]:
        """Replace the partitions of ``days`` with a generic table (idempotent re-runs of a day).

        Like :meth:`replace`, for tables that are not points (statistics, flags, windows with
        list columns...): ``table`` needs ``series_id`` and ``ts`` columns (partitioned by the
        UTC day of ``ts``) and may have any others. Read them back with :meth:`read_table`.
        """
        where = self._dataset_dir(zone, dataset, points=True)
        label = f"{zone}/{dataset}"
        return self._replace_days(where, label, conform_table(table, label), days)

    def _replace_days(self, where: str, label: str, table: pa.Table, days: Sequence[date]) -> list[str]:
        """Write ``table`` (conformed) first, then delete the older files of ``days``."""
        wanted = sorted({d.date() if isinstance(d, datetime) else d for d in days})
        if table.num_rows:
            check_days(table, wanted, label)
        old = [
            info
            for day in wanted
            for info in self._list(f"{where}/{self._layout.day_prefix(day)}", recursive=True)
            if is_data_file(info)
        ]
        parts = split_partitions(table, self._layout)
        written = self._write_parts(where, parts, replaced=True) if table.num_rows else []
        self._delete([info.path for info in old])
        for part_dir in sorted({os.path.dirname(info.path) for info in old}):
            self._remove_if_empty(part_dir, where)
        return written

    def write_quarantine(self, dataset: str, records: pa.Table) -> str | None:
        """Append bad records (QUARANTINE_SCHEMA) to ``quarantine/<dataset>``; None if empty.

        Partitioned by the UTC date of ``quarantined_at`` (missing or null: now). Only
        ``source`` and ``reason`` are required columns. Returns the first written path.
        """
        where = self._dataset_dir("quarantine", dataset)
        rec = conform_quarantine(records, QUARANTINE_SCHEMA, f"quarantine/{dataset}")
        if rec.num_rows == 0:
            return None
        parts = split_partitions(rec, LAYOUTS["date"], "quarantined_at")
        return self._write_parts(where, parts, sort=False)[0]

    def _write_parts(
        self, where: str, parts: Iterable[tuple[str, pa.Table]], *, sort: bool = True, replaced: bool = False
    ) -> list[str]:
        jobs = [(f"{where}/{key}", part) for key, part in parts]

        def one(job: tuple[str, pa.Table]) -> str:
            part_dir, part = job
            path = f"{part_dir}/{self._namer.name(rows=part.num_rows)}"
            try:
                self._fs.create_dir(part_dir, recursive=True)
                write_atomic(sort_points(part) if sort else part, self._fs, path)
            except _ARROW_ERRORS as exc:
                raise LakeError(f"cannot write {path}: {exc}") from exc
            return path

        if len(jobs) <= 1 or self._threads == 1:
            written = [one(job) for job in jobs]
        else:
            with ThreadPoolExecutor(min(self._threads, len(jobs))) as pool:
                written = list(pool.map(one, jobs))
        if self.on_write is not None and written:  # the catalog's record: one call per write (or batch)
            tell(self.on_write, partition_writes(self._fs, where, jobs, written, replaced=replaced))
        return written

    # ---------------------------------------------------------------- reading

    def read(
        self,
        zone: str,
        dataset: str,
        *,
        series: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        dedup: bool = True,
    ) -> pa.Table:
        """Points of ``zone/dataset`` ordered by (series_id, ts), with start ≤ ts < end.

        Partition pruning on the time range; series filter pushed down; duplicates on
        (series_id, ts) resolved to the latest file's value when ``dedup``. Empty table of
        POINT_SCHEMA when nothing matches. Naive datetimes are taken as UTC.
        """
        self._dataset_dir(zone, dataset, points=True)
        if isinstance(series, str):
            series = [series]
        if series is not None and not series:
            return empty_points()
        start_us, end_us = to_us(start), to_us(end)
        label = f"{zone}/{dataset}"
        files = self.files(zone, dataset, start=start, end=end)
        try:
            return (
                self._read_points(label, files, series, start_us, end_us, dedup) if files else empty_points()
            )
        except LakeError:
            if all(info.type != pafs.FileType.NotFound for info in self._fs.get_file_info(files)):
                raise
        files = self.files(zone, dataset, start=start, end=end)  # compacted or dropped meanwhile
        return self._read_points(label, files, series, start_us, end_us, dedup) if files else empty_points()

    def read_buckets(
        self,
        zone: str,
        dataset: str,
        series_id: str,
        *,
        every_us: int,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pa.Table:
        """Points of one series aggregated into buckets of ``every_us`` µs aligned on the epoch:
        ``ts`` (bucket start), ``min``, ``max``, ``mean``, ``last`` (value of the newest ts) and
        ``count``, oldest bucket first; empty buckets are absent. Duplicates resolve as in
        :meth:`read` (newest file wins), inside DuckDB, so no point crosses into Python.

        >>> import tempfile
        >>> from sparkhu.series import points
        >>> with tempfile.TemporaryDirectory() as root:
        ...     lake = Lake(root)
        ...     _ = lake.write("raw", "m", points("a/b/c", [0, 60_000_000, 120_000_000], [1.0, 3.0, 5.0]))
        ...     lake.read_buckets("raw", "m", "a/b/c", every_us=120_000_000).column("mean").to_pylist()
        [2.0, 5.0]
        """
        if every_us < 1:
            raise LakeError(f"a bucket must last at least 1 µs (got {every_us})")
        self._dataset_dir(zone, dataset, points=True)
        files = self.files(zone, dataset, start=start, end=end)
        where, params, arrow_filter = point_filters([series_id], to_us(start), to_us(end))
        sql = (
            "WITH p AS (SELECT epoch_us(ts::TIMESTAMPTZ) AS t, arg_max(value::DOUBLE, file_index) AS v "
            f"FROM {{src}} WHERE {where} GROUP BY t) "
            "SELECT make_timestamptz(t // $every * $every) AS ts, min(v) AS min, max(v) AS max, "
            "avg(v) AS mean, arg_max(v, t) AS last, count(v) AS count FROM p GROUP BY t // $every ORDER BY 1"
        )
        if not files:
            return BUCKET_SCHEMA.empty_table()
        params = {**params, "every": every_us}
        label, columns = f"{zone}/{dataset}", ["series_id", "ts", "value"]
        result = self._query(label, files, columns, _sql(sql), params, arrow_filter)
        return result.cast(BUCKET_SCHEMA)

    def files(
        self, zone: str, dataset: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> list[str]:
        """The data files a read of [start, end) opens, oldest write first (after pruning)."""
        where = self._dataset_dir(zone, dataset)
        start_us, end_us = to_us(start), to_us(end)
        layout = self._layout_of(zone)
        dirs = self._partition_dirs(where, layout, start_us, end_us)
        infos = [info for _, path in dirs for info in self._list(path) if is_data_file(info)]
        return [info.path for info in sorted(infos, key=lambda info: (info.base_name, info.path))]

    def file_uris(
        self, zone: str, dataset: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> list[str]:
        """:meth:`files` as URIs another reader opens (Spark, Hadoop), oldest write first.

        File names sort by write order, so a reader that keeps, of duplicate points, the one
        of the greatest file name resolves them as :meth:`read` does. ``file://`` URIs for
        local roots; URI roots keep their scheme and authority. :class:`LakeError` for a lake
        opened on a filesystem object without a URI form (pass the root as a URI instead).
        """
        files = self.files(zone, dataset, start=start, end=end)
        uris = [file_uri(self._fs, self.root, self._base, path) for path in files]
        if any(uri is None for uri in uris):
            raise LakeError(
                f"cannot name the files of {zone}/{dataset} as URIs: the lake at {self.root!r} is on "
                f"{type(self._fs).__name__}; open it with a URI root (s3://, gs://, hdfs://, file://)"
            )
        return [uri for uri in uris if uri is not None]

    def _read_points(
        self,
        label: str,
        files: list[str],
        series: Sequence[str] | None,
        start_us: int | None,
        end_us: int | None,
        dedup: bool,
    ) -> pa.Table:
        """DuckDB: filter, cast ids to a temporary ENUM of the sorted ids (cheap to sort, exported
        as an Arrow dictionary), order by (series_id, ts, newest file first), de-duplicate."""
        where, params, arrow_filter = point_filters(series, start_us, end_us)
        order = "series_id, ts, file_index DESC" if dedup else "series_id, ts"

        def few(cur: duckdb.DuckDBPyConnection, src: str, params: dict[str, Any]) -> pa.Table:
            """A read of named series: one query, the few ids dictionary-encoded by Arrow."""
            sql = (
                "SELECT series_id::VARCHAR AS series_id, ts::TIMESTAMPTZ AS ts, value::DOUBLE AS value "
                f"FROM {src} WHERE {where} ORDER BY {order}"
            )
            table = cur.sql(sql, params=params).to_arrow_table()
            ids = pc.dictionary_encode(table.column("series_id"))
            return table.set_column(0, "series_id", ids)

        def run(cur: duckdb.DuckDBPyConnection, src: str, params: dict[str, Any]) -> pa.Table:
            sql = f"SELECT DISTINCT series_id::VARCHAR AS v FROM {src} WHERE {where} ORDER BY v"
            ids = cur.sql(sql, params=params).to_arrow_table()
            if ids.num_rows == 0:
                return empty_points()
            cur.register("lake_ids", ids)
            cur.execute("CREATE TEMP TYPE lake_series AS ENUM (SELECT v FROM lake_ids)")
            sql = (
                "SELECT series_id::VARCHAR::lake_series AS series_id, ts::TIMESTAMPTZ AS ts, "
                f"value::DOUBLE AS value FROM {src} WHERE {where} ORDER BY {order}"
            )
            return cur.sql(sql, params=params).to_arrow_table()

        many = series is None or len(series) > _FEW_SERIES
        result = self._query(
            label, files, ["series_id", "ts", "value"], run if many else few, params, arrow_filter
        )
        return sorted_points(result, dedup)

    def read_table(
        self,
        zone: str,
        dataset: str,
        *,
        series: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pa.Table:
        """Rows of a table written by :meth:`replace_table`, ordered by (series_id, ts, write order).

        Same pruning and filters as :meth:`read`, no de-duplication (a table may hold several
        rows per timestamp; :meth:`replace_table` keeps days free of stale rows). Columns are
        the union of the files' columns; with no files, only ``series_id`` and ``ts``.
        """
        self._dataset_dir(zone, dataset, points=True)
        if isinstance(series, str):
            series = [series]
        label = f"{zone}/{dataset}"
        files = self.files(zone, dataset, start=start, end=end)
        if not files or (series is not None and not series):
            return conform_table(
                pa.table({"series_id": pa.array([], pa.string()), "ts": pa.array([], TS_TYPE)}), label
            )
        names = dict.fromkeys(self._columns(label, files))
        start_us, end_us = to_us(start), to_us(end)
        where, params, arrow_filter = point_filters(series, start_us, end_us)
        rest = "".join(f', "{name}"' for name in names if name not in ("series_id", "ts"))
        sql = (
            f"SELECT series_id::VARCHAR AS series_id, ts::TIMESTAMPTZ AS ts{rest} FROM {{src}} "
            f"WHERE {where} ORDER BY series_id, ts, file_index, file_row_number"
        )
        result = self._query(label, files, list(names), _sql(sql), params, arrow_filter, union_by_name=True)
        return conform_table(result, label)

    def columns(self, zone: str, dataset: str) -> list[str]:
        """The columns of ``zone/dataset``: the union of its files' columns in order of appearance
        (``series_id``, ``ts``, ``value`` for points; more for the tables of :meth:`replace_table`)."""
        self._dataset_dir(zone, dataset, points=True)
        return self._columns(f"{zone}/{dataset}", self.files(zone, dataset))

    def _columns(self, label: str, files: list[str]) -> list[str]:
        names: dict[str, None] = {}
        for path in files:
            try:
                names.update(dict.fromkeys(pq.read_schema(path, filesystem=self._fs).names))
            except _ARROW_ERRORS as exc:
                raise self._read_error(label, files, exc) from exc
        return list(names)

    def read_quarantine(self, dataset: str) -> pa.Table:
        """All quarantined records of ``dataset``, in the order they were quarantined."""
        files = self.files("quarantine", dataset)
        if not files:
            return QUARANTINE_SCHEMA.empty_table()
        names = QUARANTINE_SCHEMA.names
        sql = f"SELECT {', '.join(names)} FROM {{src}} ORDER BY quarantined_at, file_index, file_row_number"
        result = self._query(f"quarantine/{dataset}", files, names, _sql(sql), {})
        return result.select(names).cast(QUARANTINE_SCHEMA)

    def series(self, zone: str, dataset: str) -> list[str]:
        """Distinct series ids present in ``zone/dataset``, sorted."""
        self._dataset_dir(zone, dataset, points=True)
        files = self.files(zone, dataset)
        if not files:
            return []
        sql = "SELECT DISTINCT series_id::VARCHAR AS s FROM {src} WHERE series_id IS NOT NULL ORDER BY s"
        return self._query(f"{zone}/{dataset}", files, ["series_id"], _sql(sql), {}).column("s").to_pylist()

    def _query(
        self,
        label: str,
        files: list[str],
        columns: list[str],
        run: Callable[[duckdb.DuckDBPyConnection, str, dict[str, Any]], pa.Table],
        params: dict[str, Any],
        arrow_filter: pads.Expression | None = None,
        *,
        union_by_name: bool = False,
    ) -> pa.Table:
        """``run(cursor, src, params)`` on a fresh DuckDB cursor, where ``src`` is the SQL source
        of ``files`` (with the ``file_index`` and ``file_row_number`` columns); ``union_by_name``
        lets files differ in their columns."""
        with self._db_lock:
            if self._db is None:
                self._db = duckdb.connect(":memory:")
            cur = self._db.cursor()
        try:
            cur.execute("SET TimeZone = 'UTC'")
            if self._local:
                union = ", union_by_name = true" if union_by_name else ""
                src = f"read_parquet($files, hive_partitioning = false{union})"
                params = {**params, "files": files}
            else:
                cur.register("lake_src", scan_arrow(self._fs, files, columns, arrow_filter, label))
                src = "lake_src"
            return run(cur, src, params)
        except duckdb.Error as exc:
            raise self._read_error(label, files, exc) from exc
        finally:
            cur.close()

    def _read_error(self, label: str, files: list[str], exc: Exception) -> LakeError:
        """Name the file at fault when one of ``files`` is not Parquet."""
        for path in files:
            try:
                pq.read_metadata(path, filesystem=self._fs)
            except FileNotFoundError:
                return LakeError(f"cannot read {label}: {path} was removed during the read; try again")
            except _ARROW_ERRORS as bad:
                return LakeError(
                    f"cannot read {label}: {path} is not a readable Parquet file ({bad}); "
                    "delete it or move it out of the lake"
                )
        return LakeError(f"cannot read {label} ({len(files)} files under {self.root}): {exc}")

    # ---------------------------------------------------------------- housekeeping

    def datasets(self, zone: str | None = None) -> list[tuple[str, str]]:
        """(zone, dataset) pairs that exist, sorted."""
        zones = [self._check_zone(zone)] if zone is not None else list(ZONES)
        found = []
        for z in zones:
            for info in self._list(f"{self._base}/{z}"):
                if info.type == pafs.FileType.Directory and self._valid_dataset(info.base_name):
                    found.append((z, info.base_name))
        return sorted(found)

    def partition_keys(self, zone: str, dataset: str) -> list[str]:
        """The keys of the partitions that hold data files, oldest first: a listing, no file is opened
        (:meth:`partitions` also counts rows)."""
        where = self._dataset_dir(zone, dataset)
        return [
            key
            for key, path in self._partition_dirs(where, self._layout_of(zone))
            if any(is_data_file(i) for i in self._list(path))
        ]

    def partitions(self, zone: str, dataset: str) -> list[PartitionInfo]:
        """The partitions of a dataset that hold data files, oldest first.

        A file that is not readable Parquet does not hide the others: it is listed in its
        partition's ``corrupt`` (a read of that partition names it as the one at fault).
        """
        where = self._dataset_dir(zone, dataset)
        found = (self._partition_info(zone, dataset, key, path) for key, path in self._partition_dirs(
            where, self._layout_of(zone)
        ))  # fmt: skip
        return [info for info in found if info is not None]

    def partition(self, zone: str, dataset: str, key: str) -> PartitionInfo | None:
        """What partition ``key`` holds now (as in :meth:`partitions`); None when it has no data file."""
        where = self._dataset_dir(zone, dataset)
        ((_, path),) = self._key_dirs(where, self._layout_of(zone), [key])
        return self._partition_info(zone, dataset, key, path)

    def partition_range(self, zone: str, dataset: str, key: str) -> tuple[int | None, int | None]:
        """The first and last time (µs, UTC) of partition ``key`` (its ``ts`` or ``quarantined_at``
        column, read alone); Nones when it holds no data file or no such column."""
        where = self._dataset_dir(zone, dataset)
        ((_, path),) = self._key_dirs(where, self._layout_of(zone), [key])
        files = [i.path for i in self._list(path) if is_data_file(i)]
        if not files:
            return None, None
        names = pq.read_schema(files[0], filesystem=self._fs).names
        column = next((c for c in TIME_COLUMNS if c in names), None)
        if column is None:
            return None, None
        try:
            table = pq.read_table(files, columns=[column], filesystem=self._fs)
        except _ARROW_ERRORS as exc:
            raise LakeError(f"cannot read the time range of {zone}/{dataset}/{key}: {exc}") from exc
        return time_range(table)

    def _partition_info(self, zone: str, dataset: str, key: str, path: str) -> PartitionInfo | None:
        data = [i for i in self._list(path) if is_data_file(i)]
        if not data:
            return None
        rows, corrupt = 0, []
        for info in data:
            try:
                rows += self._rows(info.path)
            except LakeError:
                corrupt.append(info.path)
        size = sum(i.size for i in data)
        return PartitionInfo(zone, dataset, key, len(data), rows, size, tuple(corrupt))

    def compact(self, zone: str, dataset: str, *, keys: Sequence[str] | None = None) -> list[PartitionInfo]:
        """Rewrite each partition (or only ``keys``) as one sorted, de-duplicated file. Atomic.

        The new file is named to sort just after the newest file it replaces, so a file
        written meanwhile still wins; the old files are deleted once the new one is in place.
        Partitions that already are one compacted file are left alone. Returns the results.
        """
        where = self._dataset_dir(zone, dataset, points=True)
        layout = self._layout_of(zone)
        if keys is None:
            targets = self._partition_dirs(where, layout)
        else:
            targets = self._key_dirs(where, layout, keys)
        out = []
        for key, path in targets:
            data = sorted((i for i in self._list(path) if is_data_file(i)), key=lambda i: i.base_name)
            if len(data) == 1 and data[0].base_name.endswith("-c.parquet"):
                out.append(PartitionInfo(zone, dataset, key, 1, self._rows(data[0].path), data[0].size))
                continue
            if not data:
                continue
            label = f"{zone}/{dataset}/{key}"
            table = self._read_points(label, [i.path for i in data], None, None, None, dedup=True)
            stamps = [s for s in (name_ns(i.base_name) for i in data) if s is not None]
            files = size = 0
            if table.num_rows:
                stamp = max(stamps) + 1 if stamps else None
                target = f"{path}/{self._namer.name(stamp, compacted=True, rows=table.num_rows)}"
                try:
                    write_atomic(table, self._fs, target)
                    size = self._fs.get_file_info(target).size
                except _ARROW_ERRORS as exc:
                    raise LakeError(f"cannot compact {label}: writing {target} failed: {exc}") from exc
                files = 1
            self._delete([i.path for i in data])
            if not files:
                self._remove_if_empty(path, where)
            out.append(PartitionInfo(zone, dataset, key, files, table.num_rows, size))
        return out

    def drop_partitions(self, zone: str, dataset: str, keys: Sequence[str]) -> int:
        """Delete whole partitions; returns how many were removed."""
        where = self._dataset_dir(zone, dataset)
        removed = 0
        for _, path in self._key_dirs(where, self._layout_of(zone), keys):
            try:
                if self._fs.get_file_info(path).type != pafs.FileType.Directory:
                    continue
                self._fs.delete_dir(path)
            except _ARROW_ERRORS as exc:
                raise LakeError(f"cannot drop partition {path}: {exc}") from exc
            removed += 1
            self._remove_if_empty(os.path.dirname(path), where)
        return removed

    # ---------------------------------------------------------------- retention support

    @property
    def filesystem(self) -> pafs.FileSystem:
        """The pyarrow filesystem the lake lives on (retention moves files within it)."""
        return self._fs

    @property
    def base(self) -> str:
        """The lake root as a path of :attr:`filesystem`."""
        return self._base

    def partition_files(self, zone: str, dataset: str) -> list[tuple[str, list[tuple[str, int]]]]:
        """``(key, [(path, bytes), ...])`` of every partition holding data files, oldest first.

        One recursive listing of the dataset (no file is opened), so planning over thousands of
        partitions stays fast; files of a partition in write order.
        """
        where = self._dataset_dir(zone, dataset)
        layout = self._layout_of(zone).name
        found: dict[str, list[tuple[str, int]]] = {}
        for path, size in self._walk_files(where):
            cut = path.rfind("/")
            name, key = path[cut + 1 :], path[len(where) + 1 : cut]
            if name.endswith(".tmp") or name.startswith((".", "_")):
                continue  # what readers ignore (see is_data_file)
            if key not in found:
                if key_start_us(layout, key) is None:
                    continue  # a file outside the partition tree is no reader's either
                found[key] = []
            found[key].append((path, size))
        return [(key, sorted(found[key])) for key in sorted(found)]  # keys sort by time, names by write

    def _walk_files(self, where: str) -> Iterator[tuple[str, int]]:
        """(path, bytes) of every file under ``where``: os.walk on a local lake (much faster than a
        pyarrow listing of thousands of directories), the filesystem's listing otherwise."""
        if isinstance(self._fs, pafs.LocalFileSystem):
            folders = [where]
            while folders:
                try:
                    entries = os.scandir(folders.pop())
                except FileNotFoundError:
                    continue  # dropped meanwhile
                with entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            folders.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            try:
                                yield entry.path, entry.stat().st_size
                            except FileNotFoundError:
                                continue  # compacted or dropped meanwhile
            return
        for info in self._list(where, recursive=True):
            if info.is_file:
                yield info.path, info.size or 0

    def key_interval(self, zone: str, key: str) -> tuple[int, int]:
        """[start, end) in µs of partition ``key`` of ``zone``; LakeError for a key of no layout."""
        layout = self._layout_of(zone)
        start = key_start_us(layout.name, key)
        if start is None:
            raise LakeError(
                f"partition key {key!r} does not follow layout {layout.name!r} ({layout.pattern})"
            )
        return start, start + layout.unit_us

    def file_rows(self, paths: Sequence[str]) -> list[int]:
        """The row count of each file: recorded in its name at write time, else from the Parquet
        footers (read in parallel); remembered: data files are immutable and their names unique, so
        a count never goes stale."""
        if not paths:
            return []
        missing = [p for p in dict.fromkeys(paths) if p not in self._row_cache]
        if missing:
            if len(self._row_cache) + len(missing) > _ROW_CACHE:
                self._row_cache.clear()
            # a count the lake recorded in the name at write time needs no footer read
            named = {p: name_rows(p[p.rfind("/") + 1 :]) for p in missing}
            unnamed = [p for p, n in named.items() if n is None]
            self._row_cache.update((p, n) for p, n in named.items() if n is not None)
            if unnamed:
                self._row_cache.update(zip(unnamed, self._footer_rows(unnamed), strict=True))
        return [self._row_cache[p] for p in paths]

    def _footer_rows(self, paths: list[str]) -> list[int]:
        """Row counts of the footers of ``paths``: DuckDB reads local ones in parallel."""
        if self._local:

            def run(cur: duckdb.DuckDBPyConnection, src: str, params: dict[str, Any]) -> pa.Table:
                sql = "SELECT file_name, num_rows FROM parquet_file_metadata($files)"
                return cur.sql(sql, params={"files": list(paths)}).to_arrow_table()

            with self._db_lock:
                if self._db is None:
                    self._db = duckdb.connect(":memory:")
                cur = self._db.cursor()
            try:
                table = run(cur, "", {})
            except duckdb.Error as exc:
                raise self._read_error("file rows", list(paths), exc) from exc
            finally:
                cur.close()
            rows = dict(
                zip(table.column("file_name").to_pylist(), table.column("num_rows").to_pylist(), strict=True)
            )
            return [int(rows[path]) for path in paths]
        with ThreadPoolExecutor(min(self._threads * 4, len(paths))) as pool:
            return list(pool.map(self._rows, paths))

    def split_files(
        self,
        zone: str,
        dataset: str,
        files: Sequence[str],
        drop: str,
        params: dict[str, Any],
    ) -> tuple[pa.Table, pa.Table]:
        """``(dropped, kept)``: the rows of ``files`` (one partition's) for which the DuckDB condition
        ``drop`` holds and those for which it does not, columns as stored.

        Points are first de-duplicated as :meth:`read` does (the newest file's value wins), so that
        rewriting ``kept`` as one file changes nothing a reader sees; other tables keep every row.
        """
        label = f"{zone}/{dataset}"
        paths = list(files)
        names: dict[str, None] = {}
        for path in paths:
            try:
                names.update(dict.fromkeys(pq.read_schema(path, filesystem=self._fs).names))
            except _ARROW_ERRORS as exc:
                raise self._read_error(label, paths, exc) from exc
        points = zone != "quarantine" and set(names) == {"series_id", "ts", "value"}
        cols = ", ".join(f'"{n}"' for n in names)
        if points:
            body = (
                f"SELECT {cols}, ({drop}) AS _drop FROM {{src}} "
                "QUALIFY row_number() OVER (PARTITION BY series_id, ts ORDER BY file_index DESC) = 1 "
                "ORDER BY series_id, ts"
            )
        else:
            body = f"SELECT {cols}, ({drop}) AS _drop FROM {{src}} ORDER BY file_index, file_row_number"
        table = self._query(label, paths, list(names), _sql(body), params, union_by_name=True)
        flag = table.column("_drop").fill_null(False)
        table = table.drop_columns(["_drop"])
        if points:
            table = conform_points(table.cast(pa.schema([table.schema.field(n) for n in names])), label)
        return table.filter(flag), table.filter(pc.invert(flag))

    def rewrite_partition(
        self, zone: str, dataset: str, key: str, replaced: Sequence[str], table: pa.Table
    ) -> str | None:
        """Write ``table`` into partition ``key`` as one file named to sort just after the newest of
        ``replaced`` (so a file written meanwhile still wins, as in :meth:`compact`); None if empty.

        The caller removes ``replaced`` afterwards: a crash in between leaves duplicates of equal
        values, which reads resolve.
        """
        where = self._dataset_dir(zone, dataset)
        ((_, path),) = self._key_dirs(where, self._layout_of(zone), [key])
        if table.num_rows == 0:
            return None
        stamps = [s for s in (name_ns(os.path.basename(p)) for p in replaced) if s is not None]
        stamp = max(stamps) + 1 if stamps else None
        target = f"{path}/{self._namer.name(stamp, compacted=True, rows=table.num_rows)}"
        try:
            self._fs.create_dir(path, recursive=True)
            write_atomic(table, self._fs, target)
        except _ARROW_ERRORS as exc:
            raise LakeError(f"cannot rewrite {zone}/{dataset}/{key}: writing {target} failed: {exc}") from exc
        return target

    def move(self, source: str, target: str) -> None:
        """Move one file within the lake's filesystem (parents created); a missing source is skipped."""
        try:
            if self._fs.get_file_info(source).type == pafs.FileType.NotFound:
                return
            self._fs.create_dir(os.path.dirname(target), recursive=True)
            self._fs.move(source, target)
        except _ARROW_ERRORS as exc:
            raise LakeError(f"cannot move {source} to {target}: {exc}") from exc
        self._remove_if_empty(os.path.dirname(source), self._base)

    # ---------------------------------------------------------------- paths and listing

    def _check_zone(self, zone: str) -> str:
        if zone not in ZONES:
            raise LakeError(f"unknown lake zone {zone!r}; expected one of {', '.join(ZONES)}")
        return zone

    @staticmethod
    def _valid_dataset(name: str) -> bool:
        return bool(_DATASET_RE.match(name)) and not name.startswith(".")

    def _dataset_dir(self, zone: str, dataset: str, *, points: bool = False) -> str:
        self._check_zone(zone)
        if points and zone == "quarantine":
            raise LakeError(
                f"quarantine/{dataset} holds quarantined records, not points; "
                "use write_quarantine/read_quarantine"
            )
        if not isinstance(dataset, str) or not self._valid_dataset(dataset):
            raise LakeError(
                f"invalid dataset name {dataset!r}: use letters, digits and _ . - (not starting with a dot)"
            )
        return f"{self._base}/{zone}/{dataset}"

    def _layout_of(self, zone: str) -> Layout:
        return LAYOUTS["date"] if zone == "quarantine" else self._layout

    def _key_dirs(self, where: str, layout: Layout, keys: Sequence[str]) -> list[tuple[str, str]]:
        out = []
        for key in keys:
            try:
                layout.parse(key)
            except ValueError as exc:
                raise LakeError(str(exc)) from exc
            out.append((key, f"{where}/{key}"))
        return out

    def _partition_dirs(
        self, where: str, layout: Layout, start_us: int | None = None, end_us: int | None = None
    ) -> list[tuple[str, str]]:
        """(key, path) of the partitions that may hold points of [start, end), oldest first.

        A bounded range yields its candidate directories directly (missing ones list empty);
        otherwise the partition tree is walked level by level, pruning by each level's range.
        """
        if start_us is not None and end_us is not None:
            first, last = start_us // layout.unit_us, (end_us - 1) // layout.unit_us
            if last < first:
                return []
            if last - first < _MAX_CANDIDATES:
                return [(k, f"{where}/{k}") for k in map(layout.key, range(first, last + 1))]
        return walk_partitions(self._list, where, layout, start_us, end_us)

    def _list(self, path: str, *, recursive: bool = False) -> list[pafs.FileInfo]:
        try:
            return self._fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=recursive))
        except _ARROW_ERRORS as exc:
            raise LakeError(f"cannot list {path}: {exc}") from exc

    def _rows(self, path: str) -> int:
        try:
            return pq.read_metadata(path, filesystem=self._fs).num_rows
        except _ARROW_ERRORS as exc:
            raise LakeError(f"{path} is not a readable Parquet file ({exc}); delete or move it") from exc

    def _delete(self, paths: Iterable[str]) -> None:
        for path in paths:
            try:
                self._fs.delete_file(path)
            except FileNotFoundError:
                continue
            except _ARROW_ERRORS as exc:
                raise LakeError(f"cannot delete {path}: {exc}") from exc

    def _remove_if_empty(self, path: str, stop: str) -> None:
        """Delete ``path`` and its parents up to (not including) ``stop`` while they are empty."""
        while path.startswith(stop + "/"):
            try:
                if self._list(path):
                    return
                self._fs.delete_dir(path)
            except (LakeError, *_ARROW_ERRORS):
                return  # best effort: an empty directory is harmless
            path = os.path.dirname(path)
