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

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkhu.errors import NotFoundError
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


def new_points(lake: Lake, catalog: Catalog, zone: str, dataset: str, points: pa.Table) -> pa.Table:
    """The rows of ``points`` whose (``series_id``, ``ts``) ``zone/dataset`` does not hold yet, each key once.

    See the module docstring for how it is decided: one radix sort of the series codes (plus a
    full sort only for input out of time order inside a series), one catalog query, and a lake
    read only for points not newer than their series' last counted one. ``points`` itself when
    every row is new.
    """
    if points.num_rows == 0:
        return points
    ids = points.column("series_id")
    if not pa.types.is_dictionary(ids.type):
        ids = pc.dictionary_encode(ids.cast(pa.string()))
    ids = ids.unify_dictionaries()
    names = ids.chunk(0).dictionary.cast(pa.string()).to_pylist()
    first_code = {name: code for code, name in reversed(list(enumerate(names)))}  # a name may repeat
    remap = np.fromiter((first_code[n] for n in names), dtype=np.uint32, count=len(names))
    codes = remap[np.concatenate([chunk.indices.to_numpy(zero_copy_only=False) for chunk in ids.chunks])]
    if len(names) < 1 << 16:
        codes = codes.astype(np.uint16)  # numpy radix-sorts 16-bit keys
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
    last = catalog.last_ts(list(first_code))
    if last:
        bounds = np.fromiter(
            (last.get(n, np.iinfo(np.int64).min) for n in names), dtype=np.int64, count=len(names)
        )
        doubtful = keep & (ts <= bounds[codes])
        if doubtful.any():
            keep &= ~doubtful
            keep[_absent(lake, zone, dataset, points, doubtful)] = True
    return points if keep.all() else points.filter(pa.array(keep))


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
