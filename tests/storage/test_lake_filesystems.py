"""The lake on object stores' code path: every operation through a non-local pyarrow filesystem.

``s3://``, ``gs://`` and ``hdfs://`` roots give the lake a pyarrow filesystem that is not a
``LocalFileSystem``, so it lists, writes, renames and deletes through that object and reads
Parquet through pyarrow (DuckDB only reads local paths itself). These tests take that path on
the local disk, with the two kinds of filesystem object an object store arrives as:

* ``SubTreeFileSystem`` over ``LocalFileSystem``: a native pyarrow filesystem, like
  ``S3FileSystem``, ``GcsFileSystem`` and ``HadoopFileSystem``;
* ``PyFileSystem(FSSpecHandler(...))`` over fsspec's ``file`` filesystem: how fsspec-only stores
  (``abfs://``, ``gcsfs``...) are handed to pyarrow.

The same operations on a plain local lake give the reference answers.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from sparkhu.errors import LakeError
from sparkhu.series import points
from sparkhu.storage.lake import Lake

T0 = datetime(2024, 3, 1, tzinfo=UTC)
T0_US = int(T0.timestamp()) * 1_000_000
MIN_US = 60_000_000


def subtree(folder: Path) -> pafs.FileSystem:
    return pafs.SubTreeFileSystem(str(folder), pafs.LocalFileSystem())


def fsspec_local(folder: Path) -> pafs.FileSystem:
    handler = pafs.FSSpecHandler(fsspec.filesystem("file"))
    return pafs.SubTreeFileSystem(str(folder), pafs.PyFileSystem(handler))


FILESYSTEMS: dict[str, Callable[[Path], pafs.FileSystem]] = {"subtree": subtree, "fsspec": fsspec_local}


def sample(days: int = 3, n_series: int = 3, seed: int = 0) -> pa.Table:
    """Points of ``n_series`` series every 30 minutes over ``days`` days, shuffled."""
    per = days * 48
    ids = np.repeat(np.array([f"test/meter{i}/P" for i in range(n_series)]), per)
    ts = np.tile(T0_US + np.arange(per, dtype=np.int64) * 30 * MIN_US, n_series)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ts))
    return points(list(ids[order]), ts[order], rng.normal(size=len(ts))[order])


def rows(table: pa.Table) -> list[tuple[str, int, float]]:
    ids = table.column("series_id").cast(pa.string()).to_pylist()
    ts = table.column("ts").cast(pa.int64()).to_pylist()
    return sorted(zip(ids, ts, table.column("value").to_pylist(), strict=True))


def exercise(lake: Lake) -> dict[str, object]:
    """Write, overwrite, replace, compact, drop and quarantine; return what a reader sees after each."""
    seen: dict[str, object] = {}
    table = sample()
    lake.write("raw", "meters", table)
    lake.write("raw", "meters", table.slice(0, 50))  # the same points again: de-duplicated on read
    lake.write("raw", "meters", points("test/meter0/P", [T0_US], [42.0]))  # the latest write wins
    seen["read"] = rows(lake.read("raw", "meters"))
    seen["window"] = rows(
        lake.read("raw", "meters", start=T0 + timedelta(days=1), end=T0 + timedelta(days=2))
    )
    seen["series"] = lake.series("raw", "meters")
    new_day = points("test/meter9/P", [T0_US, T0_US + 60 * MIN_US], [7.0, 8.0])
    lake.replace("raw", "meters", new_day, [date(2024, 3, 1)])
    lake.replace("raw", "meters", new_day, [date(2024, 3, 1)])  # idempotent
    seen["replaced"] = rows(lake.read("raw", "meters", end=T0 + timedelta(days=1)))
    seen["before_compact"] = [(p.key, p.rows) for p in lake.partitions("raw", "meters")]
    compacted = lake.compact("raw", "meters")
    seen["compacted"] = [(p.key, p.files, p.rows) for p in compacted]
    seen["after_compact"] = rows(lake.read("raw", "meters"))
    seen["dropped"] = lake.drop_partitions("raw", "meters", ["date=2024-03-03"])
    seen["partitions"] = [(p.key, p.files, p.rows) for p in lake.partitions("raw", "meters")]
    seen["datasets"] = lake.datasets()
    records = pa.table(
        {
            "source": ["meters.csv"],
            "location": ["line 3"],
            "field": ["WHE"],
            "reason": ["not a number"],
            "raw": ["x,y"],
            "quarantined_at": pa.array([T0_US], pa.timestamp("us", "UTC")),
        }
    )
    lake.write_quarantine("meters", records)
    seen["quarantine"] = lake.read_quarantine("meters").column("reason").to_pylist()
    clone = pickle.loads(pickle.dumps(lake))  # as shipped to worker processes and Spark executors
    seen["pickled"] = rows(clone.read("raw", "meters"))
    return seen


@pytest.mark.parametrize("kind", sorted(FILESYSTEMS))
def test_every_operation_through_a_non_local_filesystem_matches_the_local_lake(
    tmp_path: Path, kind: str
) -> None:
    (tmp_path / "store").mkdir()
    filesystem = FILESYSTEMS[kind](tmp_path / "store")
    assert not isinstance(filesystem, pafs.LocalFileSystem)
    remote = Lake("bucket/lake", filesystem=filesystem)
    expected = exercise(Lake(str(tmp_path / "local")))
    got = exercise(remote)
    assert got == expected
    assert expected["compacted"] == [("date=2024-03-01", 1, 2), ("date=2024-03-02", 1, 144),
                                     ("date=2024-03-03", 1, 144)]  # fmt: skip
    assert expected["dropped"] == 1 and expected["quarantine"] == ["not a number"]
    # the files are where an object store would hold them: under the bucket's prefix
    on_disk = sorted(
        p.relative_to(tmp_path / "store").as_posix() for p in (tmp_path / "store").rglob("*.parquet")
    )
    assert on_disk and all(p.startswith("bucket/lake/") for p in on_disk)
    assert "bucket/lake/raw/meters/date=2024-03-01/" in " ".join(on_disk)
    assert not any(p.endswith(".tmp") for p in on_disk)


def test_a_uri_root_opens_its_filesystem_and_reads_the_same_files(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    remote = Lake("bucket/lake", filesystem=subtree(tmp_path / "store"))
    remote.write("raw", "meters", sample(days=1))
    by_uri = Lake((tmp_path / "store" / "bucket" / "lake").as_uri())  # FileSystem.from_uri, as for s3://
    assert rows(by_uri.read("raw", "meters")) == rows(remote.read("raw", "meters"))


def test_a_corrupt_object_is_named_by_its_path_in_the_store(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    remote = Lake("bucket/lake", filesystem=fsspec_local(tmp_path / "store"))
    remote.write("raw", "meters", sample(days=1))
    bad = tmp_path / "store/bucket/lake/raw/meters/date=2024-03-01/part-zz.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(LakeError, match=r"bucket/lake/raw/meters/date=2024-03-01/part-zz\.parquet"):
        remote.read("raw", "meters")


@pytest.mark.parametrize(
    ("root", "match"),
    [
        ("nosuch://bucket/lake", "cannot open lake root 'nosuch://bucket/lake'"),
        ("s4://bucket/lake", "cannot open lake root 's4://bucket/lake'"),
    ],
)
def test_unusable_roots_are_lake_errors_naming_the_uri(root: str, match: str) -> None:
    with pytest.raises(LakeError, match=match):
        Lake(root)


def test_file_uris_name_the_files_of_a_read_for_other_readers(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    local = Lake(tmp_path / "local")
    local.write("raw", "meters", sample(days=2))
    day = (T0, T0 + timedelta(days=1))
    uris = local.file_uris("raw", "meters", start=day[0], end=day[1])
    assert uris == ["file://" + p for p in local.files("raw", "meters", start=day[0], end=day[1])]
    assert len(uris) == 1 and "date=2024-03-01" in uris[0]
    remote = Lake("bucket/lake", filesystem=subtree(tmp_path / "store"))
    remote.write("raw", "meters", sample(days=1))
    [uri] = remote.file_uris("raw", "meters")
    assert uri.startswith(f"file://{tmp_path}/store/bucket/lake/raw/meters/date=2024-03-01/part-")
    assert Path(uri.removeprefix("file://")).is_file()
    mock = Lake("mock:///lake")
    mock.write("raw", "meters", sample(days=1))
    assert [u.rsplit("/", 1)[0] for u in mock.file_uris("raw", "meters")] == [
        "mock:///lake/raw/meters/date=2024-03-01"
    ]


def test_file_uris_need_a_filesystem_with_uris(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    wrapped = Lake("bucket/lake", filesystem=fsspec_local(tmp_path / "store"))
    wrapped.write("raw", "meters", sample(days=1))
    with pytest.raises(LakeError, match=r"raw/meters as URIs: .* open it with a URI root"):
        wrapped.file_uris("raw", "meters")
    assert wrapped.file_uris("raw", "nothing") == []


def test_object_store_uris_keep_the_scheme_and_authority() -> None:
    from sparkhu.storage._parquet import file_uri

    store, _ = pafs.FileSystem.from_uri("mock:///")  # any filesystem that is not local
    assert file_uri(store, "s3://bucket/lake?region=x", "bucket/lake", "bucket/lake/raw/a.parquet") == (
        "s3://bucket/lake/raw/a.parquet"
    )
    assert file_uri(store, "hdfs://nn:8020/lake", "/lake", "/lake/raw/a.parquet") == (
        "hdfs://nn:8020/lake/raw/a.parquet"
    )
    assert file_uri(store, "hdfs://nn:8020/lake", "/elsewhere", "/elsewhere/a.parquet") is None
    assert file_uri(store, "bucket/lake", "bucket/lake", "bucket/lake/a.parquet") is None
