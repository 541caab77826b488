"""Fuzz the JSON decoder: a point per valid record, a quarantine row per invalid one, nothing raised."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz.conftest import FUZZ

from sparkhu.connectors.consume import decode
from sparkhu.stream.base import Message
from sparkhu.stream.codecs import JsonDecoder
from sparkhu.timeaxis import POINT_END_US, POINT_MIN_US

PART = st.from_regex(r"[A-Za-z0-9_.:\-]{1,8}", fullmatch=True)
SERIES = st.tuples(PART, PART, PART).map("/".join)
MS = st.integers(-(-POINT_MIN_US // 1000), POINT_END_US // 1000 - 1)
FINITE = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**300), 10**300)


@st.composite
def record(draw: st.DrawFn) -> tuple[bytes, tuple[str, int, float] | None, bool]:
    """(message, the point it must give or None, whether it must be quarantined)."""
    sid, ms = draw(SERIES), draw(MS)
    kind = draw(st.sampled_from(["ok", "ok", "ok", "missing", "value", "ts", "id", "shape", "text"]))
    if kind == "ok":
        value = draw(FINITE)
        ts = draw(st.sampled_from([ms, str(ms)]))
        return (
            json.dumps({"series_id": sid, "ts": ts, "value": value}).encode(),
            (sid, ms * 1000, float(value)),
            False,
        )
    if kind == "missing":  # NaN and null are missing values: no point, nothing wrong
        value = draw(st.sampled_from(["NaN", "null"]))
        return f'{{"series_id": "{sid}", "ts": {ms}, "value": {value}}}'.encode(), None, False
    if kind == "value":
        value = draw(
            st.sampled_from(["Infinity", "-Infinity", "1e400", "9" * 400, '"1.5"', "true", "[]", "{}"])
        )
        return f'{{"series_id": "{sid}", "ts": {ms}, "value": {value}}}'.encode(), None, True
    if kind == "ts":
        ts = draw(
            st.sampled_from(
                ['"²"', '"٣"', "true", "null", "1e400", '"9999-01-01T00:00:00Z"', "[1]", '"soon"']
            )
            | st.integers(POINT_END_US // 1000, 10**400).map(str)
            | st.integers(-(10**400), -(-POINT_MIN_US // 1000) - 1).map(str)
        )
        return f'{{"series_id": "{sid}", "ts": {ts}, "value": 1}}'.encode(), None, True
    if kind == "id":
        bad_id = draw(st.sampled_from(['"a/b"', '"a b/c/d"', "1", "null", '"é/b/c"', '""']))
        return f'{{"series_id": {bad_id}, "ts": {ms}, "value": 1}}'.encode(), None, True
    if kind == "shape":
        return draw(st.sampled_from([b"1", b'"x"', b"null", b'{"ts": 1}', b"[1, 2]"])), None, True
    text = draw(st.binary(min_size=1, max_size=40))
    try:
        json.loads(text)
    except ValueError:
        return text, None, True
    return b"{" + text, None, True  # made invalid JSON


@FUZZ
@given(records=st.lists(record(), max_size=20))
def test_valid_records_are_kept_and_invalid_ones_quarantined(records):
    values = [r[0] for r in records]
    sources = [f"t/0/{i}" for i in range(len(records))]
    good, bad = JsonDecoder().decode(values, sources)
    got = zip(
        good.column("series_id").to_pylist(),
        good.column("ts").cast("int64").to_pylist(),
        good.column("value").to_pylist(),
        strict=True,
    )
    assert sorted(got) == sorted(r[1] for r in records if r[1] is not None)
    assert sorted(set(bad.column("source").to_pylist())) == sorted(
        s for s, r in zip(sources, records, strict=True) if r[2]
    )
    assert all(bad.column("reason").to_pylist())
    assert all(math.isfinite(v) for v in good.column("value").to_pylist())


@FUZZ
@given(values=st.lists(st.binary(max_size=60) | st.text(max_size=60).map(str.encode), max_size=10))
def test_arbitrary_message_values_never_raise_through_the_consumer(values: list[bytes]):
    messages = [Message("t", 0, i, None, v, 0) for i, v in enumerate(values)]
    batch = decode(messages, JsonDecoder(source="s", tag="zone"))
    assert batch.points.num_rows + batch.quarantine.num_rows >= 0
    ts = batch.points.column("ts").cast("int64").to_pylist()
    assert all(POINT_MIN_US <= t < POINT_END_US for t in ts)
    quarantined = set(batch.quarantine.column("source").to_pylist())
    assert {f"t/0/{m.offset}" for m in batch.rejected} == quarantined
