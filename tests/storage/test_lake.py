"""The lake on a real local filesystem (and through a non-local pyarrow filesystem wrapper)."""

from __future__ import annotations

import os
import pickle
import re
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from sparkhu.errors import LakeError
from sparkhu.series import POINT_SCHEMA, QUARANTINE_SCHEMA, points
from sparkhu.storage.lake import Lake, PartitionInfo

T0 = datetime(2024, 3, 1, tzinfo=UTC)
T0_US = int(T0.timestamp()) * 1_000_000
MIN_US = 60_000_000
HOUR_US = 60 * MIN_US


def sample(days: int = 3, n_series: int = 3, step_us: int = 30 * MIN_US, seed: int = 0) -> pa.Table:
    """Points of ``n_series`` series every ``step_us`` over ``days`` days, in shuffled order."""
    per = days * 24 * HOUR_US // step_us
    ids = [f"test/meter{i}/P" for i in range(n_series)]
    sid = np.repeat(np.array(ids), per)
    ts = np.tile(T0_US + np.arange(per, dtype=np.int64) * step_us, n_series)
    rng = np.random.default_rng(seed)
    values = rng.normal(size=len(ts))
    order = rng.permutation(len(ts))
    return points(list(sid[order]), ts[order], values[order])


def as_rows(table: pa.Table) -> list[tuple[str, int, float]]:
    ids = table.column("series_id").cast(pa.string()).to_pylist()
    ts = table.column("ts").cast(pa.int64()).to_pylist()
    return list(zip(ids, ts, table.column("value").to_pylist(), strict=True))


def sorted_rows(table: pa.Table) -> list[tuple[str, int, float]]:
    return sorted(as_rows(table))


def put_garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not parquet, just some bytes\n")
    return path


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(str(tmp_path / "lake"))


@pytest.mark.parametrize(
    ("layout", "key_re", "n_parts"),
    [
        ("date", r"^date=2024-03-0[123]$", 3),
        ("hourly", r"^year=2024/month=03/day=0[123]/hour=\d\d$", 72),
    ],
)
def test_round_trip_both_layouts(tmp_path: Path, layout: str, key_re: str, n_parts: int) -> None:
    lake = Lake(str(tmp_path / "lake"), layout=layout)
    table = sample()
    written = lake.write("raw", "meters", table)
    assert len(written) == n_parts
    assert all(re.fullmatch(r"part-\d{20}-[0-9a-f]{8}-n\d+\.parquet", os.path.basename(p)) for p in written)
    got = lake.read("raw", "meters")
    assert got.schema.equals(POINT_SCHEMA)
    assert as_rows(got) == sorted_rows(table)  # ordered by (series_id, ts)
    parts = lake.partitions("raw", "meters")
    assert len(parts) == n_parts and all(re.match(key_re, p.key) for p in parts)
    assert [p.key for p in parts] == sorted(p.key for p in parts)
    assert sum(p.rows for p in parts) == table.num_rows and all(p.bytes > 0 for p in parts)
    assert lake.series("raw", "meters") == ["test/meter0/P", "test/meter1/P", "test/meter2/P"]
    assert lake.datasets() == [("raw", "meters")]


def test_time_range_and_series_filters(lake: Lake) -> None:
    table = sample()
    lake.write("raw", "meters", table)
    start, end = T0 + timedelta(hours=23), T0 + timedelta(days=1, hours=1)
    got = lake.read("raw", "meters", series=["test/meter1/P"], start=start, end=end)
    expected = [
        r
        for r in sorted_rows(table)
        if r[0] == "test/meter1/P" and T0_US + 23 * HOUR_US <= r[1] < T0_US + 25 * HOUR_US
    ]
    assert as_rows(got) == expected and len(expected) == 4  # start inclusive, end exclusive
    naive = lake.read("raw", "meters", series="test/meter1/P", start=start.replace(tzinfo=None), end=end)
    assert as_rows(naive) == expected
    assert lake.read("raw", "meters", series=[]).num_rows == 0
    assert lake.read("raw", "meters", start=end, end=start).num_rows == 0


def test_pruning_skips_partitions_outside_the_range(tmp_path: Path) -> None:
    for layout in ("date", "hourly"):
        lake = Lake(str(tmp_path / layout), layout=layout)
        lake.write("raw", "meters", sample())
        first = lake.partitions("raw", "meters")[0].key
        bad = put_garbage(tmp_path / layout / "raw" / "meters" / first / "part-0-bad.parquet")
        day3 = T0 + timedelta(days=2)
        # bounded range: only the day's candidate dirs are listed and read
        files = lake.files("raw", "meters", start=day3, end=day3 + timedelta(days=1))
        assert len(files) == (1 if layout == "date" else 24)
        assert len(lake.read("raw", "meters", start=day3, end=day3 + timedelta(days=1))) == 3 * 48
        # open-ended range: the partition tree is walked with pruning
        assert lake.read("raw", "meters", start=day3).num_rows == 3 * 48
        assert len(lake.files("raw", "meters", start=day3)) == len(files)
        # the corrupt file is only touched when its partition is in range
        with pytest.raises(LakeError, match=re.escape(str(bad))):
            lake.read("raw", "meters", end=T0 + timedelta(hours=1))


def test_same_points_twice_are_deduplicated_and_compacted(lake: Lake) -> None:
    table = sample()
    lake.write("raw", "meters", table)
    lake.write("raw", "meters", table)
    assert lake.read("raw", "meters").num_rows == table.num_rows
    assert lake.read("raw", "meters", dedup=False).num_rows == 2 * table.num_rows
    assert [p.files for p in lake.partitions("raw", "meters")] == [2, 2, 2]
    compacted = lake.compact("raw", "meters")
    assert [(p.files, p.rows) for p in compacted] == [(1, 144), (1, 144), (1, 144)]
    parts = lake.partitions("raw", "meters")
    assert [(p.files, p.rows) for p in parts] == [(1, 144), (1, 144), (1, 144)]
    assert as_rows(lake.read("raw", "meters", dedup=False)) == sorted_rows(table)
    # compacting again leaves the compacted files alone
    before = lake.files("raw", "meters")
    lake.compact("raw", "meters", keys=[parts[0].key])
    assert lake.files("raw", "meters") == before


def test_latest_write_wins_also_across_compaction(lake: Lake) -> None:
    sid, ts = "test/meter0/P", [T0_US, T0_US + MIN_US]
    lake.write("raw", "meters", points(sid, ts, [1.0, 1.0]))
    lake.write("raw", "meters", points(sid, ts[:1], [2.0]))
    assert lake.read("raw", "meters")["value"].to_pylist() == [2.0, 1.0]
    lake.compact("raw", "meters")
    assert lake.read("raw", "meters")["value"].to_pylist() == [2.0, 1.0]
    lake.write("raw", "meters", points(sid, ts[1:], [3.0]))
    assert lake.read("raw", "meters")["value"].to_pylist() == [2.0, 3.0]
    names = [os.path.basename(p) for p in lake.files("raw", "meters")]
    assert names == sorted(names) and names[0].endswith("-c.parquet")


def test_replace_is_idempotent_and_survives_a_crash(lake: Lake) -> None:
    table = sample(days=2)
    lake.write("raw", "meters", table)
    day1 = T0.date()
    new = points("test/meter9/P", [T0_US, T0_US + HOUR_US], [7.0, 8.0])
    lake.write("raw", "meters", new)  # as if a replace crashed after writing, before deleting
    lake.replace("raw", "meters", new, [day1])
    lake.replace("raw", "meters", new, [day1])
    got = lake.read("raw", "meters", end=T0 + timedelta(days=1))
    assert as_rows(got) == sorted_rows(new)
    parts = lake.partitions("raw", "meters")
    assert [(p.key, p.files) for p in parts] == [("date=2024-03-01", 1), ("date=2024-03-02", 1)]
    assert lake.read("raw", "meters").num_rows == 2 + table.num_rows // 2
    # an empty replacement removes the day entirely
    lake.replace("raw", "meters", points("test/meter9/P", [], []), [datetime(2024, 3, 1, 12, tzinfo=UTC)])
    assert [p.key for p in lake.partitions("raw", "meters")] == ["date=2024-03-02"]
    with pytest.raises(LakeError, match=r"1 point\(s\) fall outside the given days \(first at 2024-03-05"):
        lake.replace("raw", "meters", points("a/b/c", [T0_US + 4 * 24 * HOUR_US], [1.0]), [day1])


def test_replace_hourly_covers_every_hour_of_the_day(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"), layout="hourly")
    lake.write("raw", "meters", sample(days=2))
    new = points("test/meter0/P", [T0_US + 5 * HOUR_US], [1.5])
    written = lake.replace("raw", "meters", new, [date(2024, 3, 1)])
    assert [os.path.basename(os.path.dirname(p)) for p in written] == ["hour=05"]
    keys = [p.key for p in lake.partitions("raw", "meters")]
    assert keys[0] == "year=2024/month=03/day=01/hour=05" and len(keys) == 25
    assert not (tmp_path / "lake/raw/meters/year=2024/month=03/day=01/hour=04").exists()


def test_leftover_tmp_and_hidden_files_are_ignored(lake: Lake, tmp_path: Path) -> None:
    table = sample(days=1)
    lake.write("raw", "meters", table)
    part = tmp_path / "lake/raw/meters/date=2024-03-01"
    put_garbage(part / "part-00000000000000000001-deadbeef.parquet.tmp")
    put_garbage(part / "_SUCCESS")
    put_garbage(part / ".part-1.parquet.crc")
    assert lake.read("raw", "meters").num_rows == table.num_rows
    assert [p.files for p in lake.partitions("raw", "meters")] == [1]
    lake.compact("raw", "meters")
    assert lake.read("raw", "meters").num_rows == table.num_rows


def test_garbage_file_in_a_partition_is_named(lake: Lake, tmp_path: Path) -> None:
    lake.write("raw", "meters", sample(days=1))
    bad = put_garbage(tmp_path / "lake/raw/meters/date=2024-03-01/notes.txt")
    for call in (
        lambda: lake.read("raw", "meters"),
        lambda: lake.series("raw", "meters"),
        lambda: lake.compact("raw", "meters"),
    ):
        with pytest.raises(LakeError, match=rf"{re.escape(str(bad))} is not a readable Parquet file"):
            call()


def test_a_corrupt_file_is_listed_as_such_beside_the_others(lake: Lake, tmp_path: Path) -> None:
    lake.write("raw", "meters", sample(days=2))
    bad = put_garbage(tmp_path / "lake/raw/meters/date=2024-03-01/part-x.parquet")
    first, second = lake.partitions("raw", "meters")
    assert first.corrupt == (str(bad),) and first.files == 2
    assert first.rows == second.rows > 0 and second.corrupt == ()


def test_quarantine_round_trip(lake: Lake) -> None:
    records = pa.table(
        {
            "source": ["meters.csv", "meters.csv", "kafka:raw/0/17"],
            "location": ["line 3", "line 9", "offset 17"],
            "field": ["WHE", "ts", None],
            "reason": ["not a number", "bad timestamp", "undecodable"],
            "raw": ["x,y", "1,2", "\x00"],
            "quarantined_at": pa.array(
                [T0_US + HOUR_US, T0_US, T0_US + 30 * HOUR_US], pa.timestamp("us", "UTC")
            ),
        }
    )
    first = lake.write_quarantine("ingest", records)
    assert first is not None and "/quarantine/ingest/date=2024-03-0" in first
    got = lake.read_quarantine("ingest")
    assert got.schema.equals(QUARANTINE_SCHEMA)
    assert got["reason"].to_pylist() == ["bad timestamp", "not a number", "undecodable"]
    assert [p.key for p in lake.partitions("quarantine", "ingest")] == ["date=2024-03-01", "date=2024-03-02"]
    assert lake.write_quarantine("ingest", records.slice(0, 0)) is None
    # only source and reason are required; quarantined_at defaults to now
    lake.write_quarantine("other", pa.table({"source": ["f.csv"], "reason": ["empty line"]}))
    other = lake.read_quarantine("other")
    assert other["location"].to_pylist() == [None]
    assert abs(other["quarantined_at"][0].as_py() - datetime.now(UTC)) < timedelta(minutes=1)
    assert lake.read_quarantine("nothing").num_rows == 0
    with pytest.raises(LakeError, match=r"missing column\(s\) reason"):
        lake.write_quarantine("ingest", pa.table({"source": ["f.csv"]}))


@pytest.mark.parametrize("zone", ["bronze", "", "RAW", "../raw"])
def test_bad_zone_names(lake: Lake, zone: str) -> None:
    with pytest.raises(LakeError, match=r"unknown lake zone .*expected one of raw, validated"):
        lake.write(zone, "meters", sample(days=1))
    with pytest.raises(LakeError, match="unknown lake zone"):
        lake.read(zone, "meters")


@pytest.mark.parametrize("dataset", ["", ".", "..", "../etc", "a/b", "me ters", ".hidden", "ü"])
def test_bad_dataset_names(lake: Lake, dataset: str) -> None:
    with pytest.raises(LakeError, match=r"invalid dataset name .*letters, digits and _ \. -"):
        lake.write("raw", dataset, sample(days=1))
    with pytest.raises(LakeError, match="invalid dataset name"):
        lake.read("raw", dataset)
    with pytest.raises(LakeError, match="invalid dataset name"):
        lake.write_quarantine(dataset, pa.table({"source": ["f"], "reason": ["r"]}))


def test_malformed_tables_are_rejected(lake: Lake) -> None:
    with pytest.raises(LakeError, match=r"cannot write raw/meters: missing column\(s\) value"):
        lake.write(
            "raw", "meters", pa.table({"series_id": ["a/b/c"], "ts": pa.array([1], pa.timestamp("us"))})
        )
    no_ts = pa.table({"series_id": ["a/b/c"], "ts": pa.array([None], pa.timestamp("us")), "value": [1.0]})
    with pytest.raises(LakeError, match=r"1 row\(s\) have no ts"):
        lake.write("raw", "meters", no_ts)
    words = pa.table({"series_id": ["a/b/c"], "ts": pa.array([1], pa.timestamp("us")), "value": ["lots"]})
    with pytest.raises(LakeError, match="do not convert to POINT_SCHEMA"):
        lake.write("raw", "meters", words)
    with pytest.raises(LakeError, match="expected a pyarrow Table, got dict"):
        lake.write("raw", "meters", {"series_id": ["a/b/c"]})  # type: ignore[arg-type]
    assert lake.write("raw", "meters", points("a/b/c", [], [])) == []
    with pytest.raises(LakeError, match="unknown lake layout 'weekly'; expected one of date, hourly"):
        Lake("/tmp/x", layout="weekly")


def test_drop_partitions_and_keys(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"), layout="hourly")
    lake.write("raw", "meters", sample(days=1))
    keys = [p.key for p in lake.partitions("raw", "meters")][:3]
    assert lake.drop_partitions("raw", "meters", [*keys, "year=2030/month=01/day=01/hour=00"]) == 3
    assert len(lake.partitions("raw", "meters")) == 21
    for bad in (
        "date=2024-03-01",
        "year=2024/month=13/day=01/hour=00",
        "year=2024/month=3/day=01/hour=00",
        "../x",
    ):
        with pytest.raises(
            LakeError, match=r"does not follow layout 'hourly' \(year=YYYY/month=MM/day=dd/hour=HH\)"
        ):
            lake.drop_partitions("raw", "meters", [bad])
    with pytest.raises(LakeError, match="does not follow layout"):
        lake.compact("raw", "meters", keys=["hour=01"])
    lake.drop_partitions("raw", "meters", [p.key for p in lake.partitions("raw", "meters")])
    assert not any((tmp_path / "lake/raw/meters").iterdir())  # empty parents removed too


def test_datasets_lists_zones(lake: Lake) -> None:
    lake.write("raw", "b", sample(days=1))
    lake.write("clean", "a", sample(days=1))
    lake.write_quarantine("a", pa.table({"source": ["f"], "reason": ["r"]}))
    assert lake.datasets() == [("clean", "a"), ("quarantine", "a"), ("raw", "b")]
    assert lake.datasets("raw") == [("raw", "b")]
    assert lake.series("features", "missing") == [] and lake.partitions("raw", "missing") == []
    assert lake.read("features", "missing").schema.equals(POINT_SCHEMA)


def test_concurrent_reads_and_writes_from_threads(lake: Lake) -> None:
    table = sample(days=2)
    lake.write("raw", "meters", table)
    expected = sorted_rows(table)
    results: list[object] = []

    def work(i: int) -> None:
        try:
            lake.write("raw", f"other{i}", table.slice(0, 10))
            results.append(as_rows(lake.read("raw", "meters")) == expected)
        except Exception as exc:  # collected for the assertion below
            results.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 6


def test_non_local_filesystem_and_file_uri(tmp_path: Path) -> None:
    table = sample(days=2)
    (tmp_path / "sub").mkdir()
    wrapped = pafs.SubTreeFileSystem(str(tmp_path / "sub"), pafs.LocalFileSystem())
    remote = Lake("lake", filesystem=wrapped)  # not a LocalFileSystem: read through pyarrow, then DuckDB
    remote.write("raw", "meters", table)
    remote.write("raw", "meters", points("test/meter0/P", [T0_US], [42.0]))
    got = remote.read("raw", "meters", start=T0, end=T0 + timedelta(days=3))
    assert got.num_rows == table.num_rows and got["value"][0].as_py() == 42.0
    uri = Lake((tmp_path / "sub" / "lake").as_uri())
    assert as_rows(uri.read("raw", "meters")) == as_rows(got)
    assert remote.series("raw", "meters") == uri.series("raw", "meters")
    bad = put_garbage(tmp_path / "sub/lake/raw/meters/date=2024-03-02/part-x.parquet")
    with pytest.raises(LakeError, match=r"lake/raw/meters/date=2024-03-02/part-x\.parquet is not a readable"):
        remote.read("raw", "meters")
    with pytest.raises(LakeError, match=re.escape(str(bad))):
        uri.read("raw", "meters")
    with pytest.raises(LakeError, match="cannot open lake root 'nosuch://x'"):
        Lake("nosuch://x")


def test_lake_pickles_for_worker_processes(lake: Lake) -> None:
    lake.write("raw", "meters", sample(days=1))
    clone = pickle.loads(pickle.dumps(lake))
    assert clone.read("raw", "meters").equals(lake.read("raw", "meters"))


@pytest.mark.parametrize("order", ["time-major", "series-major", "shuffled", "two-chunks"])
def test_files_are_written_sorted_by_series_and_time(lake: Lake, order: str) -> None:
    table = sample(days=1, n_series=4)
    rows = sorted_rows(table)
    if order == "time-major":
        table = table.take(pa.array(np.lexsort((table["series_id"].to_numpy(), table["ts"].to_numpy()))))
    elif order == "series-major":
        table = table.take(pa.array(np.lexsort((table["ts"].to_numpy(), table["series_id"].to_numpy()))))
    elif order == "two-chunks":  # chunks with different dictionaries
        table = pa.concat_tables([sample(days=1, n_series=4, seed=1).slice(0, 100), table.slice(100)])
        rows = sorted_rows(table)
    (path,) = lake.write("raw", "meters", table)
    on_disk = as_rows(pq.read_table(path))
    assert [r[:2] for r in on_disk] == [r[:2] for r in rows] and sorted(on_disk) == rows


def test_quarantine_zone_holds_no_points(lake: Lake) -> None:
    lake.write_quarantine("ingest", pa.table({"source": ["f"], "reason": ["r"]}))
    for call in (
        lambda: lake.write("quarantine", "ingest", sample(days=1)),
        lambda: lake.read("quarantine", "ingest"),
        lambda: lake.series("quarantine", "ingest"),
        lambda: lake.compact("quarantine", "ingest"),
        lambda: lake.replace("quarantine", "ingest", sample(days=1), [T0.date()]),
    ):
        with pytest.raises(LakeError, match="quarantine/ingest holds quarantined records, not points"):
            call()
    assert [p.rows for p in lake.partitions("quarantine", "ingest")] == [1]


def test_timestamps_out_of_range_are_rejected(lake: Lake) -> None:
    far = points(
        "a/b/c", [(datetime(9999, 6, 1, tzinfo=UTC) - T0) // timedelta(microseconds=1) + T0_US], [1.0]
    )
    with pytest.raises(LakeError, match=r"timestamps must lie in the years 1\.\.9998"):
        lake.write("raw", "meters", far)
    old = points("a/b/c", [-86_400_000_000], [1.0])  # 1969-12-31 is fine
    assert lake.write("raw", "meters", old)[0].endswith(".parquet")
    assert "date=1969-12-31" in lake.files("raw", "meters")[0]


class StaleListingLake(Lake):
    """Lists a file that a concurrent compaction has just removed, once."""

    stale: str | None = None

    def files(self, zone: str, dataset: str, **bounds: datetime | None) -> list[str]:
        listed = super().files(zone, dataset, **bounds)
        stale, self.stale = self.stale, None
        return [stale, *listed] if stale else listed


def test_read_lists_again_when_files_vanish_meanwhile(tmp_path: Path) -> None:
    lake = StaleListingLake(str(tmp_path / "lake"))
    table = sample(days=1)
    lake.write("raw", "meters", table)
    lake.stale = str(tmp_path / "lake/raw/meters/date=2024-03-01/part-00000000000000000001-00000000.parquet")
    assert lake.read("raw", "meters").num_rows == table.num_rows
    assert lake.stale is None


def test_root_with_glob_characters(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "odd[1]*?"))
    table = sample(days=1)
    lake.write("raw", "meters", table)
    assert as_rows(lake.read("raw", "meters")) == sorted_rows(table)


@pytest.mark.parametrize("layout", ["date", "hourly"])
def test_partitions_know_their_first_instant(tmp_path: Path, layout: str) -> None:
    lake = Lake(str(tmp_path / layout), layout=layout)
    at = datetime(2024, 3, 2, 5, 30, tzinfo=UTC)
    lake.write("raw", "meters", points("a/b/c", [int(at.timestamp()) * 1_000_000], [1.0]))
    [part] = lake.partitions("raw", "meters")
    want = at.replace(minute=0) if layout == "hourly" else at.replace(hour=0, minute=0)
    assert part.start == want


def test_partition_start_of_a_key_of_no_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="partition key 'date=2024-13-01'"):
        _ = PartitionInfo("raw", "meters", "date=2024-13-01", 1, 1, 1).start


def test_row_counts_are_recorded_in_file_names_at_write_time(tmp_path: Path) -> None:
    """Counting rows (retention planning) reads no footer of a file the lake wrote: its count is in
    its name, also after compaction; a foreign file's count still comes from its footer."""
    lake = Lake(str(tmp_path / "lake"))
    table = sample(days=2)
    written = lake.write("raw", "meters", table)
    lake.write("raw", "meters", table.slice(0, 5))
    lake.compact("raw", "meters")
    files = lake.files("raw", "meters")
    expected = [pq.read_metadata(p).num_rows for p in files]
    assert sum(expected) == table.num_rows and all(p.endswith("-c.parquet") for p in files)
    foreign = put_garbage(tmp_path / "x.parquet")
    pq.write_table(table.slice(0, 7), foreign)
    for path in files:  # a footer read would now fail: the count must come from the name
        Path(path).write_bytes(b"not parquet")
    fresh = Lake(str(tmp_path / "lake"))
    assert fresh.file_rows([*files, str(foreign)]) == [*expected, 7]
    assert written and all(re.search(r"-n\d+\.parquet$", p) for p in written)
