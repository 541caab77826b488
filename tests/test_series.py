from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from sparkhu.errors import InputError
from sparkhu.series import (
    POINT_SCHEMA,
    QUARANTINE_SCHEMA,
    SeriesId,
    conform,
    points,
    quarantine_records,
    series_frames,
    series_runs,
    series_tail,
)


def test_series_id_round_trip():
    sid = SeriesId.parse("ampds2/electricity/WHE.P")
    assert str(sid) == "ampds2/electricity/WHE.P"


@pytest.mark.parametrize("text", ["", "a/b", "a/b/c/d", "a b/c/d", "a//c"])
def test_bad_series_ids(text):
    with pytest.raises(InputError, match="series_id: series id"):
        SeriesId.parse(text)


def test_points_with_many_ids_and_conform_naive_timestamps():
    t = points(["a/b/c", "a/b/d", "a/b/c"], [0, 1, 2], [1, 2, 3])
    assert t.schema.equals(POINT_SCHEMA)
    raw = pa.table(
        {"series_id": ["x/y/z"], "ts": pa.array([1_000_000], pa.timestamp("us")), "value": [1], "extra": [0]}
    )
    c = conform(raw)
    assert c.schema.equals(POINT_SCHEMA) and c["ts"][0].value == 1_000_000


def test_conform_names_missing_columns():
    with pytest.raises(InputError, match="missing column"):
        conform(pa.table({"ts": [1]}))


def test_quarantine_records_broadcast_the_source_and_stamp_one_time():
    at = datetime(2024, 1, 2, 3, tzinfo=UTC)
    bad = quarantine_records(
        "f.csv", ["line 2", "line 5"], ["A", None], ["not a number", "x"], ["a", None], at=at
    )
    assert bad.schema.equals(QUARANTINE_SCHEMA)
    assert bad.column("source").to_pylist() == ["f.csv", "f.csv"]
    assert bad.column("field").to_pylist() == ["A", None]
    assert bad.column("quarantined_at").to_pylist() == [at, at]
    assert quarantine_records([], [], [], [], []).num_rows == 0
    with pytest.raises(InputError, match="differ in length"):
        quarantine_records("f.csv", ["line 2"], [], ["r"], ["a"])


def test_series_runs_order_by_name_then_time_and_keep_ties_stable():
    ids = ["b/b/b", "a/a/a", "b/b/b", "a/a/a", "b/b/b"]
    table = points(ids, [5, 9, 1, 9, 5], [1.0, 2.0, 3.0, 4.0, 5.0])
    runs = series_runs(table)
    assert runs.names == ["a/a/a", "b/b/b"] and runs.offsets.tolist() == [0, 2, 5]
    assert runs.table["value"].to_pylist() == [2.0, 4.0, 3.0, 1.0, 5.0]  # ties keep input order
    assert runs.sizes().tolist() == [2, 3]
    assert list(runs.slices()) == [("a/a/a", 0, 2), ("b/b/b", 2, 5)]


def test_series_runs_take_plain_strings_chunks_and_repeated_dictionary_entries():
    plain = pa.table(
        {"series_id": ["x/y/z", "a/b/c"], "ts": pa.array([0, 1], pa.int64()), "flag": [True, False]}
    )
    runs = series_runs(plain)
    assert runs.names == ["a/b/c", "x/y/z"] and runs.table["flag"].to_pylist() == [False, True]
    chunked = pa.concat_tables([points("q/q/q", [3], [1.0]), points(["a/a/a", "q/q/q"], [0, 1], [2.0, 3.0])])
    assert series_runs(chunked).table["value"].to_pylist() == [2.0, 3.0, 1.0]
    repeated = pa.DictionaryArray.from_arrays(pa.array([0, 1, 0], pa.int32()), pa.array(["s/s/s", "s/s/s"]))
    table = pa.table({"series_id": repeated, "ts": pa.array([2, 1, 0], pa.int64())})
    runs = series_runs(table)
    assert runs.names == ["s/s/s"] and runs.table["ts"].to_pylist() == [0, 1, 2]


def test_series_runs_leave_sorted_tables_alone_and_reject_nulls():
    table = points(["a/a/a", "a/a/a", "b/b/b"], [0, 1, 0], [1.0, 2.0, 3.0])
    assert series_runs(table).table is table
    assert series_runs(table.slice(0, 0)).names == []
    with pytest.raises(InputError, match="series_id: 1 row"):
        series_runs(pa.table({"series_id": ["a/a/a", None], "ts": [0, 1]}))
    with pytest.raises(InputError, match="missing column ts"):
        series_runs(pa.table({"series_id": ["a/a/a"]}))


def test_series_runs_match_a_full_sort_on_shuffled_input():
    rng = np.random.default_rng(3)
    ids = rng.choice(["c/c/c", "a/a/a", "b/b/b", "d/d/d"], 500).tolist()
    ts = rng.integers(0, 50, 500)
    table = points(ids, ts, np.arange(500.0))
    expected = sorted(zip(ids, ts.tolist(), range(500), strict=True))
    runs = series_runs(table)
    got = list(zip(runs.table["series_id"].to_pylist(), runs.table["ts"].cast(pa.int64()).to_pylist(),
                   runs.table["value"].to_pylist(), strict=True))  # fmt: skip
    assert got == [(s, t, float(v)) for s, t, v in expected]


def test_series_frames_pick_columns():
    table = points(["x/y/z", "a/b/c", "a/b/c"], [0, 60_000_000, 0], [5.0, 2.0, 1.0])
    frames = dict(series_frames(table, ["value"]))
    assert list(frames) == ["a/b/c", "x/y/z"] and frames["a/b/c"]["value"].tolist() == [1.0, 2.0]
    assert list(frames["x/y/z"].columns) == ["value"] and frames["x/y/z"].index.tolist() == [0]
    assert list(series_frames(table.slice(0, 0))) == []


def test_series_tail_keeps_the_newest_rows_of_each_series():
    table = points(["a/a/a"] * 4 + ["b/b/b"] * 2, [3, 0, 2, 1, 7, 6], [3.0, 0.0, 2.0, 1.0, 7.0, 6.0])
    assert series_tail(table, 2)["value"].to_pylist() == [2.0, 3.0, 6.0, 7.0]
    assert series_tail(table, 10).num_rows == 6 and series_tail(table, 0).num_rows == 0
    with pytest.raises(InputError, match="n: must be >= 0"):
        series_tail(table, -1)
