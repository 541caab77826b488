from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sparkhu.errors import InputError
from sparkhu.timeaxis import (
    MAX_US,
    MIN_US,
    TS_TYPE,
    duration_us,
    format_duration,
    from_us,
    from_us_array,
    from_us_index,
    now_us,
    parse_duration,
    parse_offset,
    parse_time,
    to_us,
    to_us_array,
    to_utc,
)


def test_periods():
    assert parse_duration("1h") == timedelta(hours=1)
    assert format_duration(timedelta(seconds=60)) == "1min"
    assert format_duration(timedelta(seconds=90)) == "90s"
    with pytest.raises(InputError, match="period"):
        parse_duration("soon", "period")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("60s", timedelta(seconds=60)),
        ("1min", timedelta(minutes=1)),
        (" 15 min ", timedelta(minutes=15)),
        ("2m", timedelta(minutes=2)),
        ("10sec", timedelta(seconds=10)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("250ms", timedelta(milliseconds=250)),
        ("7us", timedelta(microseconds=7)),
        ("1.5h", timedelta(minutes=90)),
        ("+3196d", timedelta(days=3196)),
    ],
)
def test_durations_take_every_unit_of_periods_and_offsets(text, expected):
    assert parse_duration(text) == expected
    assert parse_offset(text) == expected


@pytest.mark.parametrize("text", ["0s", "-2h", "soon", "", "1 fortnight", "1e9999d", "99999999999d"])
def test_durations_must_be_positive_spans(text):
    with pytest.raises(InputError, match=r"duration: .* is not a positive number with a unit"):
        parse_duration(text)


def test_offsets_are_signed_or_anchor_words():
    assert parse_offset("-2h") == -timedelta(hours=2)
    assert parse_offset("90min") == timedelta(minutes=90)
    assert parse_offset("0s") == timedelta(0)
    assert parse_offset("end_now") == "end_now" and parse_offset("start_now") == "start_now"
    with pytest.raises(InputError, match=r"shift: expected end_now, start_now or an offset .*got 'soon'"):
        parse_offset("soon")
    with pytest.raises(InputError, match=r"--shift: expected end_now"):
        parse_offset("END_NOW", "--shift")


def test_format_duration_round_trips():
    for span in (timedelta(weeks=2), timedelta(hours=3), timedelta(seconds=1), timedelta(microseconds=1500)):
        assert parse_duration(format_duration(span)) == span
    assert format_duration(timedelta(microseconds=1500)) == "1500us"


def test_parse_time_naive_is_utc_and_offsets_convert():
    assert parse_time("2024-01-31", "--start") == datetime(2024, 1, 31, tzinfo=UTC)
    assert parse_time(" 2024-01-31T06:00Z ", "start") == datetime(2024, 1, 31, 6, tzinfo=UTC)
    got = parse_time("2024-03-01T09:00:00+09:00", "start")
    assert got == datetime(2024, 3, 1, tzinfo=UTC) and got.tzinfo is UTC
    assert parse_time(None, "start") is None


@pytest.mark.parametrize("text", ["2024-02-30", "yesterday", ""])
def test_parse_time_names_the_field(text):
    with pytest.raises(InputError, match=rf"--end: '{text}' is not an ISO 8601 timestamp"):
        parse_time(text, "--end")


def test_instants_round_trip_and_naive_is_utc():
    moment = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert from_us(to_us(moment)) == moment
    assert to_us(moment.replace(tzinfo=None)) == to_us(moment)
    assert to_us(datetime(2024, 1, 1, 9, tzinfo=timezone(timedelta(hours=9)))) == to_us(
        datetime(2024, 1, 1, tzinfo=UTC)
    )
    assert to_us(pd.Timestamp("1969-12-31 23:59:59.9999995", tz="UTC")) == -1  # floored
    assert from_us(np.int64(5)) == datetime(1970, 1, 1, 0, 0, 0, 5, tzinfo=UTC)
    assert to_us(None) is None and from_us(None) is None
    assert from_us(MIN_US) == datetime.min.replace(tzinfo=UTC)
    assert from_us(MAX_US) == datetime.max.replace(tzinfo=UTC)
    assert to_utc(datetime(2024, 1, 1)).tzinfo is UTC
    assert duration_us(timedelta(days=-1, microseconds=3)) == -86_400_000_000 + 3


def test_columns_convert_to_microseconds_from_every_container():
    us = np.array([-1, 0, 1_700_000_000_123_456], dtype=np.int64)
    arrow = from_us_array(us)
    assert arrow.type == TS_TYPE
    index = from_us_index(us)
    assert str(index.dtype) == "datetime64[us, UTC]"
    for values in (
        arrow,
        pa.chunked_array([arrow.slice(0, 1), arrow.slice(1)]),
        arrow.cast(pa.timestamp("ns", tz="UTC")),
        arrow.cast(pa.timestamp("us")),
        index,
        pd.Series(index),
        pd.Series(index.tz_localize(None).as_unit("ns")),
        index.tz_convert("Asia/Tokyo"),
        index.tz_localize(None).to_numpy(),
    ):
        got = to_us_array(values)
        assert got.dtype == np.int64 and got.tolist() == us.tolist(), type(values)
    assert to_us_array(pd.Series(pd.to_datetime(["1969-12-31 23:59:59.9999995"]))).tolist() == [-1]
    assert to_us_array(pa.chunked_array([], TS_TYPE)).tolist() == []


@pytest.mark.parametrize(
    "values",
    [np.array([1, 2]), pa.array([1, 2]), pd.Series(["2024-01-01"]), pa.array([0, None]).cast(TS_TYPE)],
)
def test_columns_that_are_not_timestamps_are_refused(values):
    with pytest.raises(InputError, match="ts: "):
        to_us_array(values)


def test_missing_timestamps_are_refused():
    with pytest.raises(InputError, match="ts: 1 timestamp"):
        to_us_array(pd.Series(pd.to_datetime(["2024-01-01", None])))


def test_now_us_is_the_wall_clock_in_microseconds():
    before = to_us(datetime.now(UTC))
    now = now_us()
    after = to_us(datetime.now(UTC))
    assert isinstance(now, int) and before <= now <= after
