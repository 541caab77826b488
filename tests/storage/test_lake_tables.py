"""Generic tables in the lake: partitioned by the day of ts, replaced atomically, read back sorted."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from sparkhu.errors import LakeError
from sparkhu.storage.lake import Lake

DAY_US = 86_400_000_000


def _table(ids: list[str], ts_us: list[int], **cols: list[object]) -> pa.Table:
    ts = pd.to_datetime(ts_us, unit="us", utc=True)
    return pa.table({"series_id": ids, "ts": ts, **cols})


def test_round_trip_with_list_columns_sorted_by_series_and_ts(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    table = _table(
        ["b/b/b", "a/a/a", "a/a/a"],
        [5, DAY_US + 1, 3],
        window=[[1.0, 2.0], [], [3.0]],
        label=["x", "y", "z"],
    )
    lake.replace_table("features", "m.windows", table, [date(1970, 1, 1), date(1970, 1, 2)])
    back = lake.read_table("features", "m.windows")
    assert back.column_names == ["series_id", "ts", "window", "label"]
    assert pa.types.is_dictionary(back.schema.field("series_id").type)
    assert back.column("series_id").to_pylist() == ["a/a/a", "a/a/a", "b/b/b"]
    assert back.column("window").to_pylist() == [[3.0], [], [1.0, 2.0]]
    assert [p.key for p in lake.partitions("features", "m.windows")] == ["date=1970-01-01", "date=1970-01-02"]


def test_replace_is_idempotent_and_clears_days_given_an_empty_table(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    table = _table(["a/a/a", "a/a/a"], [0, DAY_US], n=[1, 2])
    days = [date(1970, 1, 1), date(1970, 1, 2)]
    lake.replace_table("analysis", "m.stats", table, days)
    lake.replace_table("analysis", "m.stats", table, days)
    assert lake.read_table("analysis", "m.stats").column("n").to_pylist() == [1, 2]
    lake.replace_table("analysis", "m.stats", table.slice(0, 0), [date(1970, 1, 2)])
    assert lake.read_table("analysis", "m.stats").column("n").to_pylist() == [1]


def test_filters_on_series_and_time_range(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    table = _table(["a/a/a", "a/a/a", "b/b/b"], [0, DAY_US, DAY_US], n=[1, 2, 3])
    lake.replace_table("analysis", "m.t", table, [date(1970, 1, 1), date(1970, 1, 2)])
    start = datetime(1970, 1, 2, tzinfo=UTC)
    assert lake.read_table("analysis", "m.t", start=start).column("n").to_pylist() == [2, 3]
    assert lake.read_table("analysis", "m.t", series=["b/b/b"]).column("n").to_pylist() == [3]
    assert lake.read_table("analysis", "m.t", series=[]).num_rows == 0


def test_files_with_different_columns_are_unioned(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.replace_table("analysis", "m.t", _table(["a/a/a"], [0], n=[1]), [date(1970, 1, 1)])
    lake.replace_table("analysis", "m.t", _table(["a/a/a"], [DAY_US], n=[2], extra=[9.5]), [date(1970, 1, 2)])
    back = lake.read_table("analysis", "m.t")
    assert back.column("n").to_pylist() == [1, 2]
    assert back.column("extra").to_pylist() == [None, 9.5]


def test_empty_dataset_reads_as_series_id_and_ts(tmp_path: Path) -> None:
    back = Lake(tmp_path).read_table("analysis", "nothing")
    assert back.num_rows == 0 and back.column_names == ["series_id", "ts"]


def test_missing_key_columns_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(LakeError, match="missing column\\(s\\) series_id; tables need series_id, ts"):
        Lake(tmp_path).replace_table("analysis", "m.t", pa.table({"ts": [1]}), [date(1970, 1, 1)])


def test_rows_outside_the_days_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(LakeError, match="1 point\\(s\\) fall outside the given days"):
        Lake(tmp_path).replace_table("analysis", "m.t", _table(["a/a/a"], [DAY_US]), [date(1970, 1, 1)])


def test_null_series_is_rejected(tmp_path: Path) -> None:
    table = pa.table({"series_id": pa.array([None], pa.string()), "ts": pd.to_datetime([0], utc=True)})
    with pytest.raises(LakeError, match="1 row\\(s\\) have no series_id"):
        Lake(tmp_path).replace_table("analysis", "m.t", table, [date(1970, 1, 1)])


def test_quarantine_zone_is_not_a_table(tmp_path: Path) -> None:
    with pytest.raises(LakeError, match="quarantine/m holds quarantined records"):
        Lake(tmp_path).read_table("quarantine", "m")
