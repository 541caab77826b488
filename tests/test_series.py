from datetime import timedelta

import pyarrow as pa
import pytest

from sparkhu.errors import InputError
from sparkhu.series import POINT_SCHEMA, SeriesId, conform, format_period, parse_period, points


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


def test_periods():
    assert parse_period("1h") == timedelta(hours=1)
    assert format_period(timedelta(seconds=60)) == "1min"
    assert format_period(timedelta(seconds=90)) == "90s"
    with pytest.raises(InputError, match="period"):
        parse_period("soon")
