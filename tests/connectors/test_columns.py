"""Cells to points: every bad cell found and named, every good one kept, on text and typed columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from sparkhu.connectors.columns import Layout, parse_numbers, parse_timestamps, to_points
from sparkhu.errors import ConnectorError


def test_numbers_from_text():
    values, code = parse_numbers(
        pa.array(["1", " 2.5 ", "-3e2", "+.5", None, "abc", "1,5", "inf", "-Infinity", "nan"])
    )
    assert code.tolist() == [0, 0, 0, 0, 0, 1, 1, 2, 2, 0]
    np.testing.assert_array_equal(values[:4], [1.0, 2.5, -300.0, 0.5])
    assert np.isnan(values[4:]).all()  # missing and bad cells carry no value


def test_numbers_from_typed_columns():
    values, code = parse_numbers(pa.array([1, None, 3], pa.int32()))
    assert code.tolist() == [0, 0, 0] and np.isnan(values[1])
    _, code = parse_numbers(pa.array([True, None]))
    assert code.tolist() == [1, 0]


def test_timestamps_in_every_unit():
    assert parse_timestamps(pa.array([1, 2]), "ms", "t", "f")[0].tolist() == [1_000, 2_000]
    ts, code = parse_timestamps(pa.array(["1.5", "x", None, "1e300"]), "s", "t", "f")
    assert ts[0] == 1_500_000 and code.tolist() == [0, 2, 1, 3]
    ts, code = parse_timestamps(
        pa.array(["2020-01-01T00:00:00Z", "2020-01-01", "2020-02-30", "soon"]), "iso", "t", "f"
    )
    assert code.tolist() == [0, 0, 2, 2] and ts[0] == ts[1] == 1_577_836_800_000_000
    typed = pa.array([0, None], pa.timestamp("ns", tz="Asia/Seoul"))
    ts, code = parse_timestamps(typed, "s", "t", "f")
    assert ts[0] == 0 and code.tolist() == [0, 1]
    with pytest.raises(ConnectorError, match="f: column t holds numbers"):
        parse_timestamps(pa.array([1]), "iso", "t", "f")


def test_long_rows_name_the_field_at_fault():
    table = pa.table(
        {"series_id": ["a/b/c", "bad", None, "a/b/c"], "ts": [0, 1, 2, None], "value": [1.0, 2.0, 3.0, 4.0]}
    )
    layout = Layout(["series_id", "ts", "value"], "ts", True, [], pa.array([], pa.string()))
    points, bad = to_points(table, layout, "s", "f")
    assert points.num_rows == 1
    assert list(zip(bad.rows, bad.fields, strict=True)) == [(1, "series_id"), (2, "series_id"), (3, "ts")]
