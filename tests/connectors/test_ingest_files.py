"""File → lake ingest: one file per partition, exact counts, quarantine kept, latest value wins.

Small long and wide CSV and Parquet files through ``ingest_to_lake`` into a real local lake and
SQLite catalog; each result is compared with what the file source reads alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparkhu.connectors.files import FileSource, read_file
from sparkhu.connectors.landing import Landing
from sparkhu.connectors.runner import ingest_to_lake
from sparkhu.demo.generator import generate
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake

AMPDS2 = {"series_prefix": "ampds2/electricity/", "field_suffix": ".P"}
DAY_S = 86_400
PLAIN = pa.schema([("series_id", pa.string()), ("ts", pa.timestamp("us", tz="UTC")), ("value", pa.float64())])


def keyed(table: pa.Table) -> list[tuple[str, int, float]]:
    t = table.cast(PLAIN)
    return sorted(
        zip(
            t["series_id"].to_pylist(),
            t["ts"].cast(pa.int64()).to_pylist(),
            t["value"].to_pylist(),
            strict=True,
        )
    )


def counts(catalog: Catalog) -> dict[str, int]:
    return {info.series_id: info.count for info in catalog.list_series()}


def long_csv(path: Path, days: int = 3, series: int = 4, every_s: int = 600) -> Path:
    """``series_id,ts,value``, all series of one time together, over ``days`` days."""
    times = np.arange(0, days * DAY_S, every_s)
    lines = ["series_id,ts,value"]
    lines += [f"a/b/s{j},{t},{t / 60 + j}" for t in times for j in range(series)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def parts(tmp_path: Path):
    with Catalog(f"sqlite:///{tmp_path / 'catalog.db'}") as catalog:
        yield Lake(str(tmp_path / "lake")), catalog


def partition_files(lake: Lake, dataset: str) -> dict[str, int]:
    return {info.key: info.files for info in lake.partitions("raw", dataset)}


def test_long_csv_in_small_batches_writes_one_file_per_day_and_counts_exactly(parts, tmp_path: Path):
    lake, catalog = parts
    path = long_csv(tmp_path / "long.csv")
    source = FileSource("long", path, batch_rows=50)  # many batches per day
    stats = ingest_to_lake(source, lake, catalog, dataset="long")
    expected, _ = read_file(path)
    assert stats.points == expected.num_rows == 3 * 144 * 4
    assert partition_files(lake, "long") == {f"date=1970-01-0{d}": 1 for d in (1, 2, 3)}
    assert keyed(lake.read("raw", "long")) == keyed(expected)
    assert counts(catalog) == {f"a/b/s{j}": 3 * 144 for j in range(4)}
    assert catalog.get_watermark("long", "lake:raw/long")["files"][str(path)]["done"]
    # the same file changed (one line added): read again in full, every old point counted once
    with path.open("a") as f:
        f.write(f"a/b/s0,{3 * DAY_S},1.0\n")
    again = ingest_to_lake(FileSource("long", path, batch_rows=50), lake, catalog, dataset="long")
    assert again.points == expected.num_rows + 1
    assert counts(catalog)["a/b/s0"] == 3 * 144 + 1 and counts(catalog)["a/b/s1"] == 3 * 144


def test_lone_cr_line_ends_and_a_line_too_long_keep_every_other_point(parts, tmp_path: Path):
    lake, catalog = parts
    path = tmp_path / "mac.csv"
    path.write_bytes(b"series_id,ts,value\ra/b/c,0,1\ra/b/c,60," + b"9" * 3000 + b"\ra/b/c,120,3\r")
    stats = ingest_to_lake(FileSource("mac", path, max_line_bytes=1000), lake, catalog, dataset="mac")
    assert stats.points == 2 and stats.quarantined == 1
    assert [v for _, _, v in keyed(lake.read("raw", "mac"))] == [1.0, 3.0]
    assert lake.read_quarantine("mac").column("location").to_pylist() == ["line 3"]
    assert counts(catalog) == {"a/b/c": 2}


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_wide_files_land_as_one_sorted_file_per_day(parts, tmp_path: Path, kind: str):
    lake, catalog = parts
    data = generate(days=3, meters=10, seed=4, defects=False)
    path = data.write_csv(tmp_path / "w.csv") if kind == "csv" else data.write_parquet(tmp_path / "w.parquet")
    stats = ingest_to_lake(FileSource("wide", path, batch_rows=700, **AMPDS2), lake, catalog, dataset="w")
    expected, _ = read_file(path, **AMPDS2)
    assert stats.points == expected.num_rows
    days = np.unique(expected.column("ts").cast(pa.int64()).to_numpy() // 86_400_000_000)
    assert list(partition_files(lake, "w").values()) == [1] * len(days)  # one file per UTC day
    assert keyed(lake.read("raw", "w")) == keyed(expected)
    assert sum(counts(catalog).values()) == expected.num_rows
    for name in lake.files("raw", "w"):  # each file sorted by (series_id, ts), its row count in its name
        table = pq.read_table(name)
        assert name.endswith(f"-n{table.num_rows}.parquet")
        ids = table.column("series_id").cast(pa.string()).to_pylist()
        assert ids == sorted(ids)


def test_a_landing_counts_repeats_across_batches_once_and_keeps_the_latest_value(parts):
    lake, catalog = parts
    landing = Landing(lake, catalog, "raw", "m")
    day = 86_400_000_000
    try:
        assert landing.add(points("a/b/c", [0, 60_000_000], [1.0, 2.0])) == 2
        assert landing.add(points("a/b/c", [60_000_000, day], [5.0, 3.0])) == 1  # 60 s again
        assert landing.add(points("a/b/c", [day - 60_000_000], [4.0])) == 1  # back in time
        files = landing.commit()
    finally:
        landing.close()
    assert counts(catalog) == {"a/b/c": 4}
    assert [v for _, _, v in keyed(lake.read("raw", "m"))] == [1.0, 5.0, 4.0, 3.0]
    assert len(files) >= 2 and all(Path(f).exists() for f in files)


def test_a_landing_records_its_partitions_in_one_catalog_call_per_commit(tmp_path: Path):
    calls: list[int] = []
    with Catalog(f"sqlite:///{tmp_path / 'catalog.db'}") as catalog:

        def record(writes):
            calls.append(len(writes))
            catalog.record_writes(writes)

        lake = Lake(str(tmp_path / "lake"), on_write=record)
        landing = Landing(lake, catalog, "raw", "m", max_rows=3)  # the held points are written early
        day = 86_400_000_000
        try:
            for start in (0, day, 2 * day, day // 2):  # three days, one batch back in time
                landing.add(points("a/b/c", [start, start + 60_000_000], [1.0, 2.0]))
            assert calls == [] and catalog.list_partitions("raw", "m") == []  # nothing told before commit
            files = landing.commit()
            assert len(files) >= 4  # several files, one of them a second of day 0
            assert calls == [3]  # one call for the three partitions of every file
        finally:
            landing.close()
        recorded = {
            p["key"]: (p["files"], p["rows"], p["bytes"]) for p in catalog.list_partitions("raw", "m")
        }
    assert calls == [3]
    assert recorded == {p.key: (p.files, p.rows, p.bytes) for p in lake.partitions("raw", "m")}


def test_a_read_of_one_series_opens_only_the_partitions_in_range(parts, tmp_path: Path):
    lake, _ = parts
    for day in range(3):
        ts = day * 86_400_000_000 + np.arange(0, 1440) * 60_000_000
        lake.write("raw", "r", points(["a/b/x"] * 1440 + ["a/b/y"] * 1440, np.r_[ts, ts], np.ones(2880)))
    (day2,) = lake.files("raw", "r", start=_day(1), end=_day(2))
    assert "date=1970-01-02" in day2
    for other in lake.files("raw", "r"):  # the other days' files become unreadable
        if other != day2:
            Path(other).write_bytes(b"not parquet")
    got = lake.read("raw", "r", series=["a/b/y"], start=_day(1), end=_day(2))
    assert got.num_rows == 1440 and set(got.column("series_id").cast(pa.string()).to_pylist()) == {"a/b/y"}


def _day(n: int):
    from datetime import UTC, datetime, timedelta

    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=n)
