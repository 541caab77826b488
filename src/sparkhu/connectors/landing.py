"""Points into the lake with the catalog's series statistics kept exact, re-deliveries and all.

Every writer of raw points (the lake sink, a direct ``ingest``) is at-least-once: a batch written
before a crash is written again after it, and the lake resolves the duplicates when read. The
catalog's point counts must not count them twice, so :func:`land` adds to a series' count only
the (series, ts) keys that are new to the lake:

* points after the series' last counted timestamp are new (the usual, live case: no lake read);
* the others (a re-delivered batch, a backfill, a late point) are looked up in the lake before
  the write, over the time range they span, and only the absent ones are counted.

Duplicates inside a batch count once. One case stays approximate: a batch of already-counted
time range (a backfill) whose process dies between the lake write and the catalog update is,
when delivered again, found in the lake and not counted (a few milliseconds' window; a re-delivered
live batch is exact, since its points are then newer than the last counted one).

>>> import tempfile
>>> from sparkhu.series import points
>>> from sparkhu.storage.catalog import Catalog
>>> from sparkhu.storage.lake import Lake
>>> batch = points("home/power/P", [0, 60_000_000, 60_000_000], [1.0, 2.0, 2.5])
>>> with tempfile.TemporaryDirectory() as tmp, Catalog(f"sqlite:///{tmp}/c.db") as catalog:
...     lake = Lake(f"{tmp}/lake")
...     first = land(lake, catalog, "raw", "meters", batch)
...     again = land(lake, catalog, "raw", "meters", batch)  # delivered again after a crash
...     count = catalog.series("home/power/P").count
>>> first, again, count
(2, 0, 2)
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkhu.errors import NotFoundError
from sparkhu.series import series_runs
from sparkhu.storage.writes import WriteBuffer
from sparkhu.timeaxis import from_us

if TYPE_CHECKING:
    from sparkhu.storage.catalog import Catalog
    from sparkhu.storage.lake import Lake


def land(lake: Lake, catalog: Catalog | None, zone: str, dataset: str, points: pa.Table) -> int:
    """Write ``points`` to ``zone/dataset`` and count the new ones in the catalog; returns that count."""
    if points.num_rows == 0:
        return 0
    new = new_points(lake, catalog, zone, dataset, points) if catalog is not None else None
    lake.write(zone, dataset, points)
    if catalog is None or new is None:
        return points.num_rows
    catalog.update_series_stats(new)
    return new.num_rows


def new_points(
    lake: Lake,
    catalog: Catalog,
    zone: str,
    dataset: str,
    points: pa.Table,
    *,
    last_ts: Callable[[list[str]], Mapping[str, int]] | None = None,
    before_lake_read: Callable[[], None] | None = None,
) -> pa.Table:
    """The rows of ``points`` whose (``series_id``, ``ts``) ``zone/dataset`` does not hold yet, each key once.

    See the module docstring for how it is decided: one radix sort of the series codes (plus a
    full sort only for input out of time order inside a series), one catalog query, and a lake
    read only for points not newer than their series' last counted one. ``points`` itself when
    every row is new. ``last_ts`` replaces the catalog's last counted timestamps (a
    :class:`Landing` adds the points it counted but has not committed yet); ``before_lake_read``
    runs before the lake is looked up (a :class:`Landing` writes what it holds back first).
    """
    if points.num_rows == 0:
        return points
    names, codes = series_codes(points)
    first_code = {name: code for code, name in reversed(list(enumerate(names)))}
    ts = points.column("ts").cast(pa.int64()).to_numpy()
    keep = np.ones(ts.size, dtype=bool)
    if not _distinct_in_order(codes, ts):
        order = np.argsort(codes, kind="stable")
        c, t = codes[order], ts[order]
        same = c[1:] == c[:-1]
        if not bool(np.all((t[1:] >= t[:-1]) | ~same)):  # out of time order inside a series
            order = np.lexsort((ts, codes))
            c, t = codes[order], ts[order]
            same = c[1:] == c[:-1]
        keep[order[1:][same & (t[1:] == t[:-1])]] = False  # every later copy of a key
    last = (last_ts or catalog.last_ts)(list(first_code))
    if last:
        bounds = np.fromiter(
            (last.get(n, np.iinfo(np.int64).min) for n in names), dtype=np.int64, count=len(names)
        )
        doubtful = keep & (ts <= bounds[codes])
        if doubtful.any():
            if before_lake_read is not None:
                before_lake_read()
            keep &= ~doubtful
            keep[_absent(lake, zone, dataset, points, doubtful)] = True
    return points if keep.all() else points.filter(pa.array(keep))


def series_codes(points: pa.Table) -> tuple[list[str], np.ndarray]:
    """``(names, codes)``: the series names of ``points`` and each row's index into them, equal names
    sharing the code of their first entry (16-bit codes when they fit: numpy radix-sorts those)."""
    ids = points.column("series_id")
    if not pa.types.is_dictionary(ids.type):
        ids = pc.dictionary_encode(ids.cast(pa.string()))
    ids = ids.unify_dictionaries()
    names = ids.chunk(0).dictionary.cast(pa.string()).to_pylist() if ids.num_chunks else []
    first_code = {name: code for code, name in reversed(list(enumerate(names)))}  # a name may repeat
    remap = np.fromiter((first_code[n] for n in names), dtype=np.uint32, count=len(names))
    indices = [chunk.indices.to_numpy(zero_copy_only=False) for chunk in ids.chunks]
    codes = remap[np.concatenate(indices)] if indices else np.zeros(0, np.uint32)
    return names, codes.astype(np.uint16) if len(names) < 1 << 16 else codes


def series_stats(points: pa.Table) -> pa.Table:
    """``series_id``, ``first``, ``last`` (µs) and ``count`` of the points of each series in ``points``.

    >>> from sparkhu.series import points
    >>> series_stats(points(["a/b/c", "x/y/z", "a/b/c"], [60, 0, 0], [1.0, 2.0, 3.0])).to_pylist()[0]
    {'series_id': 'a/b/c', 'first': 0, 'last': 60, 'count': 2}
    """
    names, codes = series_codes(points)
    ts = points.column("ts").cast(pa.int64()).to_numpy()
    size = len(names)
    count = np.bincount(codes, minlength=size)
    first = np.full(size, np.iinfo(np.int64).max)
    last = np.full(size, np.iinfo(np.int64).min)
    np.minimum.at(first, codes, ts)
    np.maximum.at(last, codes, ts)
    held = np.flatnonzero(count)
    return pa.table(
        {
            "series_id": pa.array([names[i] for i in held], pa.string()),
            "first": first[held],
            "last": last[held],
            "count": count[held].astype(np.int64),
        }
    )


def _distinct_in_order(codes: np.ndarray, ts: np.ndarray) -> bool:
    """True when the keys are visibly distinct without sorting: time-major input (time never
    falls, series rising within a time) or series-major input (series never fall, time rising
    within a series) — how sources, the bus and the lake hand batches over."""
    t0, t1, c0, c1 = ts[:-1], ts[1:], codes[:-1], codes[1:]
    if bool(np.all((t1 > t0) | ((t1 == t0) & (c1 > c0)))):
        return True
    return bool(np.all((c1 > c0) | ((c1 == c0) & (t1 > t0))))


def _absent(lake: Lake, zone: str, dataset: str, points: pa.Table, doubtful: np.ndarray) -> np.ndarray:
    """Rows of ``points`` (positions) among the ``doubtful`` ones that the lake does not hold."""
    rows = np.flatnonzero(doubtful)
    check = points.take(pa.array(rows))
    ts = check.column("ts").cast(pa.int64())
    try:
        stored = lake.read(
            zone,
            dataset,
            series=pc.unique(check.column("series_id").cast(pa.string())).to_pylist(),
            start=from_us(pc.min(ts).as_py()),
            end=from_us(pc.max(ts).as_py() + 1),
        )
    except NotFoundError:  # the dataset has no points yet
        return rows
    if stored.num_rows == 0:
        return rows
    wanted = pa.table({"series_id": check.column("series_id").cast(pa.string()), "ts": ts, "_row": rows})
    held = pa.table(
        {
            "series_id": stored.column("series_id").cast(pa.string()),
            "ts": stored.column("ts").cast(pa.int64()),
        }
    )
    absent = wanted.join(held, keys=["series_id", "ts"], join_type="left anti")
    return np.sort(absent.column("_row").to_numpy())


class Landing:
    """Points into ``zone/dataset`` of the lake in large files, counted exactly, committed in steps.

    :func:`land` writes one file per partition a batch touches and updates the catalog per batch;
    a file ingest of many small batches would then write several files per partition and run one
    catalog upsert per batch. A landing instead holds each partition's points back until the
    input has moved past it (time-ordered input: each partition is written once, as one sorted
    file, by writer threads while the next batches are parsed) and gathers the statistics of the
    new points; :meth:`commit` writes what it still holds and is **the one place where written
    files and their points become known to the catalog** (the partitions of every file written since
    the last commit in one transaction, then the series' counts). The caller saves a source's watermark
    only after :meth:`commit`: a crash before it re-delivers batches whose points are not counted
    yet, so counts stay exact (see the module docstring).

    ``max_rows`` bounds the points held back (input out of time order writes earlier).

    >>> import tempfile
    >>> from sparkhu.series import points
    >>> from sparkhu.storage.catalog import Catalog
    >>> from sparkhu.storage.lake import Lake
    >>> day = 86_400_000_000
    >>> with tempfile.TemporaryDirectory() as tmp, Catalog(f"sqlite:///{tmp}/c.db") as catalog:
    ...     lake = Lake(f"{tmp}/lake")
    ...     landing = Landing(lake, catalog, "raw", "m")
    ...     for start in (0, day // 2, day, 3 * day // 2):  # four batches over two days
    ...         _ = landing.add(points("a/b/c", [start, start + 60_000_000], [1.0, 2.0]))
    ...     files = landing.commit()
    ...     landing.close()
    ...     len(files), catalog.series("a/b/c").count
    (2, 8)
    """

    def __init__(
        self, lake: Lake, catalog: Catalog | None, zone: str, dataset: str, *, max_rows: int = 4_000_000
    ) -> None:
        self.lake, self.catalog, self.zone, self.dataset = lake, catalog, zone, dataset
        self.max_rows = max_rows
        self._held: dict[str, list[pa.Table]] = {}  # partition key -> points held back
        self._held_rows = 0
        self._stats: list[pa.Table] = []  # per batch: series_id, first, last, count of its new points
        self._last: dict[str, int] = {}  # last counted timestamp per series, commits pending included
        self._writer = ThreadPoolExecutor(2, thread_name_prefix="sparkhu-landing")
        self._writes: list[Future[list[str]]] = []
        self._writing: dict[str, Future[list[str]]] = {}  # the last write of each partition key
        self._written: list[str] = []
        self._records = WriteBuffer()  # the lake's partition records of the files, told at commit

    def add(self, points: pa.Table) -> int:
        """Take a batch of points; returns how many of them are new to the dataset."""
        if points.num_rows == 0:
            return 0
        new = points.num_rows
        if self.catalog is not None:
            fresh = new_points(
                self.lake, self.catalog, self.zone, self.dataset, points,
                last_ts=self._last_ts, before_lake_read=self._flush,
            )  # fmt: skip
            new = fresh.num_rows
            self._gather(fresh)
        parts = list(self.lake.split(self.zone, self.dataset, points))
        for key, part in parts:
            self._held.setdefault(key, []).append(part)
            self._held_rows += part.num_rows
        if self._held_rows > self.max_rows:
            self._write_all()
        else:  # time-ordered input does not come back to a partition before the batch's first one
            self._write_before(parts[0][0])
        return new

    def commit(self) -> list[str]:
        """Write every held point, wait for the files, then count the new points in the catalog.

        Returns the files written since the last commit.
        """
        self._flush()
        self._records.flush()
        files, self._written = self._written, []
        if self.catalog is not None and self._stats:
            stats = (
                pa.concat_tables(self._stats)
                .group_by("series_id")
                .aggregate([("first", "min"), ("last", "max"), ("count", "sum")])
            )
            self.catalog.add_series_stats(
                stats.column("series_id").to_pylist(),
                stats.column("first_min").to_pylist(),
                stats.column("last_max").to_pylist(),
                stats.column("count_sum").to_pylist(),
            )
        self._stats = []
        self._last = {}  # the catalog holds them now
        return files

    def close(self) -> None:
        """Stop the writer thread; points held and not committed are dropped (re-delivered later)."""
        self._writer.shutdown(wait=True, cancel_futures=True)
        self._records.flush()  # files written are in the lake: their partitions are recorded

    def _last_ts(self, series: list[str]) -> dict[str, int]:
        unknown = [s for s in series if s not in self._last]
        if unknown and self.catalog is not None:
            known = self.catalog.last_ts(unknown)
            self._last.update((s, known.get(s, np.iinfo(np.int64).min)) for s in unknown)
        return {s: self._last[s] for s in series}

    def _gather(self, fresh: pa.Table) -> None:
        """Statistics of the new points of one batch; their last timestamps count from now on."""
        if fresh.num_rows == 0:
            return
        stats = series_stats(fresh)
        self._stats.append(stats)
        names = stats.column("series_id")
        for name, last in zip(names.to_pylist(), stats.column("last").to_pylist(), strict=True):
            if last > self._last.get(name, np.iinfo(np.int64).min):
                self._last[name] = last

    def _flush(self) -> None:
        """Write every held point and wait for the files (before the lake is looked up, say)."""
        self._write_all()
        for write in self._writes:
            self._written += write.result()
        self._writes, self._writing = [], {}

    def _write_before(self, key: str) -> None:
        for held in sorted(k for k in self._held if k < key):
            self._write(held)

    def _write_all(self) -> None:
        for key in sorted(self._held):
            self._write(key)

    def _write(self, key: str) -> None:
        parts = self._held.pop(key)
        self._held_rows -= sum(p.num_rows for p in parts)
        while len(self._writes) >= 3:  # a few partitions in flight: memory stays bounded
            self._written += self._writes.pop(0).result()
        earlier = self._writing.get(key)
        if earlier is not None:  # files of one partition are named in write order: one at a time
            earlier.result()
        # in the caller's context, so that the writing run (storage.writes) follows the files
        context = contextvars.copy_context()
        self._writing[key] = write = self._writer.submit(context.run, self._write_partition, parts)
        self._writes.append(write)

    def _write_partition(self, parts: list[pa.Table]) -> list[str]:
        """One partition's held points as one file, sorted, the latest value of a repeated key kept."""
        with self._records.collecting():
            return self.lake.write(self.zone, self.dataset, latest_per_key(pa.concat_tables(parts)))


def latest_per_key(points: pa.Table) -> pa.Table:
    """``points`` sorted by (series_id, ts), of each repeated key only its last row.

    >>> from sparkhu.series import points
    >>> latest_per_key(points("a/b/c", [60, 0, 60], [1.0, 2.0, 3.0]))["value"].to_pylist()
    [2.0, 3.0]
    """
    table = series_runs(points.unify_dictionaries()).table
    if table.num_rows < 2:
        return table
    _, codes = series_codes(table)
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    repeated = (codes[1:] == codes[:-1]) & (ts[1:] == ts[:-1])
    if not repeated.any():
        return table
    return table.filter(pa.array(np.r_[~repeated, True]))
