"""Fuzz the Arrow decoder of the bus: rule-abiding points kept, the rest quarantined, nothing raised."""

from __future__ import annotations

import math

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz.conftest import FUZZ

from sparkhu.connectors.consume import decode
from sparkhu.series import SERIES_ID_TYPE, check_points, is_series_id
from sparkhu.stream.base import Message
from sparkhu.stream.codecs import encode_arrow
from sparkhu.timeaxis import POINT_END_US, POINT_MIN_US, TS_TYPE

IDS = st.sampled_from(["a/b/c", "a/b/d", "not an id", "a/b", "x/y/z.P", ""])
TS = st.integers(-(2**63) + 1, 2**63 - 1) | st.integers(POINT_MIN_US, POINT_END_US - 1)
VALUES = st.floats(allow_nan=True, allow_infinity=True) | st.none()


def table_of(rows: list[tuple[str | None, int | None, float | None]]) -> pa.Table:
    ids = pa.array([r[0] for r in rows], pa.string()).dictionary_encode().cast(SERIES_ID_TYPE)
    ts = pa.array([r[1] for r in rows], pa.int64()).cast(TS_TYPE)
    values = pa.array([r[2] for r in rows], pa.float64())
    return pa.table({"series_id": ids, "ts": ts, "value": values})


def ok(row: tuple[str | None, int | None, float | None]) -> bool:
    sid, ts, value = row
    valid_id = sid is not None and is_series_id(sid)
    return (
        valid_id
        and ts is not None
        and POINT_MIN_US <= ts < POINT_END_US
        and value is not None
        and math.isfinite(value)
    )


def bad(row: tuple[str | None, int | None, float | None]) -> bool:
    """Quarantined (a missing value alone is no point but nothing wrong)."""
    sid, ts, value = row
    return not (
        sid is not None and is_series_id(sid) and ts is not None and POINT_MIN_US <= ts < POINT_END_US
    ) or (value is not None and math.isinf(value))


ROWS = st.lists(st.tuples(IDS | st.none(), TS | st.none(), VALUES), max_size=12)


@FUZZ
@given(messages=st.lists(ROWS, max_size=4))
def test_points_that_obey_the_rules_are_kept_and_the_others_quarantined(messages):
    batch = decode(
        [Message("t", 0, i, None, encode_arrow(table_of(rows)), 0) for i, rows in enumerate(messages)]
    )
    kept = list(
        zip(
            batch.points.column("series_id").to_pylist(),
            batch.points.column("ts").cast(pa.int64()).to_pylist(),
            batch.points.column("value").to_pylist(),
            strict=True,
        )
    )
    assert kept == [row for rows in messages for row in rows if ok(row)]
    expected = [
        (f"t/0/{i}", f"offset {i} row {r + 1}")
        for i, rows in enumerate(messages)
        for r, row in enumerate(rows)
        if bad(row)
    ]
    assert (
        list(
            zip(
                batch.quarantine.column("source").to_pylist(),
                batch.quarantine.column("location").to_pylist(),
                strict=True,
            )
        )
        == expected
    )
    assert all(batch.quarantine.column("reason").to_pylist())


@FUZZ
@given(
    rows=ROWS.filter(bool), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6)
)
def test_corrupted_messages_never_raise(rows, flips):
    data = bytearray(encode_arrow(table_of(rows), compression=None))
    for at, byte in flips:
        data[at % len(data)] = byte
    for value in (bytes(data), bytes(data[: len(data) // 2]), b"\xff\xff\xff\xff" + bytes(data[8:])):
        batch = decode([Message("t", 0, 0, None, value, 0)])
        assert batch.points.num_rows == 0 or check_points(batch.points).rows == []


@FUZZ
@given(value=st.binary(max_size=64).map(lambda b: b"\xff\xff\xff\xff" + b))
def test_any_bytes_after_the_arrow_magic_are_quarantined_or_points(value: bytes):
    batch = decode([Message("t", 0, 0, None, value, 0)])
    assert batch.quarantine.num_rows == 1 and batch.points.num_rows == 0
    assert batch.quarantine.column("reason")[0].as_py().startswith(("not a table of points", "cannot decode"))
