"""Fuzz the CSV reader: valid cells kept exactly, every bad line or cell quarantined with a reason."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz.conftest import FUZZ

from sparkhu.connectors.files import FileSource, read_all
from sparkhu.timeaxis import POINT_END_US, POINT_MIN_US, US_PER_S

COLUMNS = ("A", "B")
PREFIX = "f/m/"
FIRST_S, END_S = -(-POINT_MIN_US // US_PER_S), POINT_END_US // US_PER_S


@dataclass(frozen=True)
class Line:
    text: bytes
    points: tuple[tuple[str, int, float], ...]  # what it must give
    bad: bool  # whether it must be quarantined (whole or one cell)


FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)
VALID_TS = st.integers(FIRST_S, END_S - 1)


@st.composite
def valid_line(draw: st.DrawFn) -> Line:
    ts = draw(VALID_TS)
    cells, out = [], []
    for column in COLUMNS:
        value = draw(st.none() | FINITE | st.integers(-(10**15), 10**15))
        cells.append("" if value is None else repr(value))
        if value is not None:
            out.append((PREFIX + column, ts * US_PER_S, float(value)))
    return Line(f"{ts},{','.join(cells)}".encode(), tuple(out), False)


@st.composite
def bad_cell_line(draw: st.DrawFn) -> Line:
    """A valid timestamp, one bad value cell: the other cell is kept."""
    ts = draw(VALID_TS)
    bad = draw(st.sampled_from(["inf", "-Infinity", "1e400", "abc", "1.2.3", "--1", "0x10", "²"]))
    good = draw(FINITE)
    which = draw(st.integers(0, 1))
    cells = [bad, repr(good)] if which == 0 else [repr(good), bad]
    return Line(
        f"{ts},{','.join(cells)}".encode(), ((PREFIX + COLUMNS[1 - which], ts * US_PER_S, good),), True
    )


@st.composite
def bad_line(draw: st.DrawFn) -> Line:
    """The whole line is set aside: a bad timestamp, a wrong field count, quotes, junk."""
    kind = draw(st.sampled_from(["late", "early", "text", "fields", "quote", "junk"]))
    if kind == "late":
        ts = draw(st.integers(END_S, 10**30))
        return Line(f"{ts},1,2".encode(), (), True)
    if kind == "early":
        ts = draw(st.integers(-(10**30), FIRST_S - 1))
        return Line(f"{ts},1,2".encode(), (), True)
    if kind == "text":
        ts = draw(st.sampled_from(["x", "1e", "²", "NaNa", "1,5"]))
        return Line(f"{ts},1,2".encode(), (), True)
    if kind == "fields":
        n = draw(st.sampled_from([1, 2, 4, 7]))
        return Line(",".join(["1"] * n).encode(), (), True)
    if kind == "quote":
        return Line(draw(st.sampled_from([b'1,"2,3', b'"1,2,3'])), (), True)
    junk = draw(st.binary(min_size=1, max_size=30).filter(lambda b: b"\n" not in b and b"\r" not in b))
    return Line(b"\xff" + junk, (), True)  # never valid UTF-8, so never a valid line


ENDINGS = st.sampled_from([b"\n", b"\r\n", b"\r"])


@FUZZ
@given(
    lines=st.lists(st.one_of(valid_line(), valid_line(), bad_cell_line(), bad_line()), max_size=25),
    endings=st.lists(ENDINGS, min_size=26, max_size=26),
    batch_rows=st.integers(1, 8),
    final_newline=st.booleans(),
)
def test_every_valid_cell_is_kept_and_every_bad_line_quarantined(
    lines: list[Line], endings: list[bytes], batch_rows: int, final_newline: bool
):
    body = b"UNIX_TS," + ",".join(COLUMNS).encode() + endings[-1]
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        body += line.text + (endings[i] if final_newline or not last else b"")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "fuzz.csv")
        path.write_bytes(body)
        bad: list[pa.Table] = []
        got = read_all(FileSource("fuzz", path, series_prefix=PREFIX, batch_rows=batch_rows), bad.append)
    expected = sorted(p for line in lines for p in line.points)
    kept = zip(
        got.column("series_id").to_pylist(),
        got.column("ts").cast(pa.int64()).to_pylist(),
        got.column("value").to_pylist(),
        strict=True,
    )
    assert sorted(kept) == expected
    quarantined = pa.concat_tables(bad).to_pylist() if bad else []
    assert all(row["reason"] and row["source"] == str(path) for row in quarantined)
    bad_lines = {f"line {i + 2}" for i, line in enumerate(lines) if line.bad}
    assert {row["location"] for row in quarantined} == bad_lines


@FUZZ
@given(body=st.binary(max_size=300), batch_rows=st.integers(1, 5))
def test_arbitrary_bytes_after_a_header_never_raise(body: bytes, batch_rows: int):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "junk.csv")
        path.write_bytes(b"UNIX_TS,A,B\n" + body)
        bad: list[pa.Table] = []
        got = read_all(FileSource("fuzz", path, series_prefix=PREFIX, batch_rows=batch_rows), bad.append)
    ts = got.column("ts").cast(pa.int64()).to_numpy()
    assert ((ts >= POINT_MIN_US) & (ts < POINT_END_US)).all()
    assert all(abs(v) != float("inf") for v in got.column("value").to_pylist())
    lines = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 2
    for row in pa.concat_tables(bad).to_pylist() if bad else []:
        assert row["reason"] and 2 <= int(row["location"].removeprefix("line ")) <= lines
