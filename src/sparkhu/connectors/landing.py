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
from sparkhu.timeaxis import TS_TYPE, from_us

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
    """The distinct (``series_id``, ``ts``) keys of ``points`` that ``zone/dataset`` does not hold yet.

    Columns ``series_id`` (string) and ``ts``; see the module docstring for how it is decided.
    """
    keys = (
        pa.table(
            {
                "series_id": points.column("series_id").cast(pa.string()),
                "ts": points.column("ts").cast(pa.int64()),
            }
        )
        .group_by(["series_id", "ts"])
        .aggregate([])
    )
    ids = keys.column("series_id").combine_chunks()
    last = catalog.last_ts(pc.unique(ids).to_pylist())
    if last:
        names = pa.array(list(last), pa.string())
        bounds = np.append(np.fromiter(last.values(), dtype="int64", count=len(last)), np.iinfo("int64").min)
        at = pc.index_in(ids, value_set=names).fill_null(len(last)).to_numpy(zero_copy_only=False)
        doubtful = keys.column("ts").to_numpy() <= bounds[at]
        if doubtful.any():
            keys = _absent(lake, zone, dataset, keys, doubtful)
    return keys.set_column(1, "ts", keys.column("ts").cast(TS_TYPE))


def _absent(lake: Lake, zone: str, dataset: str, keys: pa.Table, doubtful: np.ndarray) -> pa.Table:
    """``keys`` without the doubtful ones already in the lake."""
    check = keys.filter(pa.array(doubtful))
    ts = check.column("ts")
    try:
        stored = lake.read(
            zone,
            dataset,
            series=pc.unique(check.column("series_id")).to_pylist(),
            start=from_us(pc.min(ts).as_py()),
            end=from_us(pc.max(ts).as_py() + 1),
        )
    except NotFoundError:  # the dataset has no points yet
        return keys
    if stored.num_rows == 0:
        return keys
    held = pa.table(
        {
            "series_id": stored.column("series_id").cast(pa.string()),
            "ts": stored.column("ts").cast(pa.int64()),
        }
    ).append_column("_held", pa.array(np.ones(stored.num_rows, dtype=bool)))
    joined = keys.join(held, keys=["series_id", "ts"], join_type="left outer")
    return joined.filter(pc.is_null(joined.column("_held"))).drop_columns(["_held"])
