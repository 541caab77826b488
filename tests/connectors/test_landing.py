"""Exact series point counts in the catalog: each (series, ts) counted once, however often written.

The real SQLite bus, lake and catalog (the catalog follows the ``settings`` fixture).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sparkhu.connectors.files import FileSource
from sparkhu.connectors.lake_sink import LakeSink
from sparkhu.connectors.landing import land, new_points
from sparkhu.connectors.runner import ingest_to_lake
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
from sparkhu.stream.codecs import publish_points
from sparkhu.stream.sqlite import SqliteBus
from sparkhu.timeaxis import to_us

T0 = 1_609_426_800_000_000
MIN = 60_000_000
SERIES = [f"home/power/M{i}" for i in range(3)]


def minutes(start: int, n: int) -> pa.Table:
    ids = np.repeat(SERIES, n).tolist()
    mins = np.tile(np.arange(start, start + n), len(SERIES))
    return points(ids, T0 + mins * MIN, mins * 1.5)


def counts(catalog: Catalog) -> dict[str, int]:
    return {info.series_id: info.count for info in catalog.list_series()}


def lake_counts(lake: Lake, dataset: str = "meters") -> dict[str, int]:
    table = lake.read("raw", dataset)
    per = table.group_by("series_id").aggregate([("ts", "count")])
    return dict(zip(per["series_id"].cast(pa.string()).to_pylist(), per["ts_count"].to_pylist(), strict=True))


@pytest.fixture
def catalog(settings) -> Iterator[Catalog]:
    with Catalog(settings.storage.catalog) as cat:
        yield cat


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(str(tmp_path / "lake"))


def test_a_chunk_delivered_again_after_a_crash_is_counted_once(tmp_path: Path, lake: Lake, catalog: Catalog):
    with SqliteBus(f"sqlite:///{tmp_path / 'bus.db'}", default_partitions=2, session_timeout=0.5) as bus:
        publish_points(bus, "raw.meters", minutes(0, 30))
        with LakeSink(bus, lake, "raw.meters", dataset="meters", catalog=catalog, max_wait=0.0) as first:
            chunk = first.fetch(timeout=1.0)
            first.store(chunk)  # written and counted; the process dies before the commit
        publish_points(bus, "raw.meters", minutes(30, 10))
        with LakeSink(bus, lake, "raw.meters", dataset="meters", catalog=catalog, max_wait=0.0) as again:
            while again.run_once(timeout=0.2):
                pass
    assert lake_counts(lake) == {sid: 40 for sid in SERIES}
    assert counts(catalog) == lake_counts(lake)


def test_the_same_file_ingested_twice_is_counted_once(tmp_path: Path, lake: Lake, catalog: Catalog):
    path = tmp_path / "meters.csv"
    table = minutes(0, 50)
    path.write_text(
        "series_id,ts,value\n"
        + "".join(
            f"{s},{t // 1_000_000},{v}\n"
            for s, t, v in zip(
                table["series_id"].cast(pa.string()).to_pylist(),
                table["ts"].cast(pa.int64()).to_pylist(),
                table["value"].to_pylist(),
                strict=True,
            )
        )
    )
    for name in ("first", "again"):  # two connectors: the second has no watermark, reads it all
        source = FileSource(name, str(path), format="csv", layout="long", ts_unit="s")
        ingest_to_lake(source, lake, catalog, dataset="meters")
    assert counts(catalog) == lake_counts(lake) == {sid: 50 for sid in SERIES}


def test_backfills_late_points_and_duplicates_inside_a_batch(lake: Lake, catalog: Catalog):
    assert land(lake, catalog, "raw", "meters", minutes(100, 20)) == 60
    late = pa.concat_tables([minutes(90, 15), minutes(95, 2)])  # 10 older, 5 known, 2 in-batch doubles
    assert new_points(lake, catalog, "raw", "meters", late).num_rows == 30
    assert land(lake, catalog, "raw", "meters", late) == 30
    assert counts(catalog) == lake_counts(lake) == {sid: 30 for sid in SERIES}
    info = catalog.series(SERIES[0])
    assert (to_us(info.first_ts), to_us(info.last_ts)) == (T0 + 90 * MIN, T0 + 119 * MIN)


def test_without_a_catalog_points_are_only_written(lake: Lake):
    assert land(lake, None, "raw", "meters", minutes(0, 3)) == 9
    assert land(lake, None, "raw", "meters", pa.Table.from_batches([], minutes(0, 1).schema)) == 0
    assert lake_counts(lake) == {sid: 3 for sid in SERIES}
