"""The file source: layouts and formats, bad records quarantined with file:line:field, resume."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sparkhu.connectors.files import FileSource, read_all, read_file
from sparkhu.demo.generator import AMPDS2_COLUMNS, generate
from sparkhu.errors import ConfigError, ConnectorError
from sparkhu.series import POINT_SCHEMA, QUARANTINE_SCHEMA

AMPDS2 = {"series_prefix": "ampds2/electricity/", "field_suffix": ".P"}
"""AMPds2 wide files: column WHE → series ampds2/electricity/WHE.P."""


PLAIN = pa.schema([("series_id", pa.string()), ("ts", pa.timestamp("us", tz="UTC")), ("value", pa.float64())])
ORDER = [("series_id", "ascending"), ("ts", "ascending"), ("value", "ascending")]


def canon(table: pa.Table) -> pa.Table:
    """Points as plain columns in one order, to compare tables regardless of batching."""
    return table.cast(PLAIN).sort_by(ORDER)


def triples(table: pa.Table) -> list[tuple[str, int, float]]:
    t = canon(table)
    return list(
        zip(
            t["series_id"].to_pylist(),
            t["ts"].cast(pa.int64()).to_pylist(),
            t["value"].to_pylist(),
            strict=True,
        )
    )


@pytest.fixture(scope="module")
def demo():
    return generate(days=3, meters=22, seed=11)


def test_ampds2_wide_csv_gives_exactly_the_generated_points(demo, tmp_path: Path):
    path = demo.write_csv(tmp_path / "Electricity_P.csv")
    assert path.read_text().splitlines()[0] == "UNIX_TS," + ",".join(AMPDS2_COLUMNS)
    points, bad = read_file(path, **AMPDS2)
    assert bad.num_rows == 0 and bad.schema.equals(QUARANTINE_SCHEMA)
    assert points.schema.equals(POINT_SCHEMA)
    assert canon(points).equals(canon(demo.points))


def test_wide_parquet_long_csv_and_long_parquet(demo, tmp_path: Path):
    expected = canon(demo.points)
    wide = demo.write_parquet(tmp_path / "wide.parquet")
    assert canon(read_file(wide, batch_rows=500, **AMPDS2)[0]).equals(expected)
    long_table = demo.points.cast(PLAIN)
    pq.write_table(long_table, tmp_path / "long.parquet", row_group_size=7_000)
    assert canon(read_file(tmp_path / "long.parquet", **AMPDS2)[0]).equals(expected)
    sec = pc.divide(long_table["ts"].cast(pa.int64()), 1_000_000)
    csv_path = tmp_path / "long.csv"
    lines = [
        f"{s},{t},{v:g}"
        for s, t, v in zip(
            long_table["series_id"].to_pylist(), sec.to_pylist(), long_table["value"].to_pylist(), strict=True
        )
    ]
    csv_path.write_text("series_id,ts,value\n" + "\n".join(lines) + "\n")
    assert canon(read_file(csv_path, batch_rows=10_000, **AMPDS2)[0]).equals(expected)


def test_units_and_iso_timestamps(tmp_path: Path):
    (tmp_path / "ms.csv").write_text("time,A,B\n1000,1,2\n61500,3,4\n")
    points, _ = read_file(tmp_path / "ms.csv", ts_unit="ms", series_prefix="x/y/", field_suffix="")
    assert triples(points) == [
        ("x/y/A", 1_000_000, 1.0),
        ("x/y/A", 61_500_000, 3.0),
        ("x/y/B", 1_000_000, 2.0),
        ("x/y/B", 61_500_000, 4.0),
    ]
    (tmp_path / "iso.csv").write_text(
        "series_id,ts,value\na/b/c,1970-01-01T00:00:01Z,1\na/b/c,1970-01-01 00:00:02,2\n"
        "a/b/c,1970-01-01T09:00:03+09:00,3\na/b/c,1970-01-01T00:00:04.5Z,4\n"
    )
    points, bad = read_file(tmp_path / "iso.csv", ts_unit="iso", **AMPDS2)
    assert bad.num_rows == 0
    assert [t for _, t, _ in triples(points)] == [1_000_000, 2_000_000, 3_000_000, 4_500_000]
    (tmp_path / "dec.csv").write_text("UNIX_TS,A\n1.5,1\n 2 ,2\n")
    points, bad = read_file(tmp_path / "dec.csv", series_prefix="x/y/", field_suffix=".P")
    assert bad.num_rows == 0 and [t for _, t, _ in triples(points)] == [1_500_000, 2_000_000]


BAD_WIDE = """UNIX_TS,WHE,FGE,HPE
0,10,1,5
60,,abc,6
120,12,2,7,99

180,13,3
not-a-time,14,4,8
240,inf,NaN,9
300, 15 ,5,1e3
,16,6,10
360,17,x7,
"""


def test_bad_records_are_quarantined_with_line_and_field_and_valid_values_kept(tmp_path: Path):
    path = tmp_path / "bad.csv"
    path.write_text(BAD_WIDE)
    points, bad = read_file(path, **AMPDS2)
    got = [(r["source"], r["location"], r["field"], r["reason"], r["raw"]) for r in bad.to_pylist()]
    src = str(path.absolute())
    assert got == [
        (src, "line 3", "FGE", "not a number", "60,,abc,6"),
        (src, "line 4", None, "expected 4 fields, got 5", "120,12,2,7,99"),
        (src, "line 6", None, "expected 4 fields, got 3", "180,13,3"),
        (
            src,
            "line 7",
            "UNIX_TS",
            "malformed timestamp; expected seconds since 1970-01-01 UTC",
            "not-a-time,14,4,8",
        ),
        (src, "line 8", "WHE", "not a finite number", "240,inf,NaN,9"),
        (src, "line 10", "UNIX_TS", "missing timestamp", ",16,6,10"),
        (src, "line 11", "FGE", "not a number", "360,17,x7,"),
    ]
    # valid values: line 2 (3), line 3 (HPE), line 8 (HPE), line 9 (3), line 11 (WHE) = 9
    assert triples(points) == [
        ("ampds2/electricity/FGE.P", 0, 1.0),
        ("ampds2/electricity/FGE.P", 300_000_000, 5.0),
        ("ampds2/electricity/HPE.P", 0, 5.0),
        ("ampds2/electricity/HPE.P", 60_000_000, 6.0),
        ("ampds2/electricity/HPE.P", 240_000_000, 9.0),
        ("ampds2/electricity/HPE.P", 300_000_000, 1000.0),
        ("ampds2/electricity/WHE.P", 0, 10.0),
        ("ampds2/electricity/WHE.P", 300_000_000, 15.0),
        ("ampds2/electricity/WHE.P", 360_000_000, 17.0),
    ]


def test_bad_long_records(tmp_path: Path):
    path = tmp_path / "long.csv"
    path.write_text(
        "series_id,ts,value\na/b/c,60,1\nnot an id,60,2\n,60,3\na/b/c,1e400,4\n"
        "a/b/d,120,x\na/b/d,180,\na/b/d,240,5\n"
    )
    points, bad = read_file(path, **AMPDS2)
    assert [(r["location"], r["field"], r["reason"]) for r in bad.to_pylist()] == [
        ("line 3", "series_id", "not a series id: expected source/measurement/field"),
        ("line 4", "series_id", "missing series id"),
        ("line 5", "ts", "malformed timestamp; expected seconds since 1970-01-01 UTC"),
        ("line 6", "value", "not a number"),
    ]
    assert triples(points) == [("a/b/c", 60_000_000, 1.0), ("a/b/d", 240_000_000, 5.0)]


def test_line_numbers_hold_across_batches_of_a_big_file(demo, tmp_path: Path):
    path = demo.write_csv(tmp_path / "Electricity_P.csv")
    lines = path.read_text().splitlines(keepends=True)
    broken = {1000: "FGE", 2500: "HPE", 4001: "CDE"}  # index in `lines` = line number - 1
    header = lines[0].strip().split(",")
    for index, field in broken.items():
        cells = lines[index].rstrip("\n").split(",")
        cells[header.index(field)] = "oops"
        lines[index] = ",".join(cells) + "\n"
    lines.insert(3000, "1,2\n")  # a short line
    path.write_text("".join(lines))
    batches: list[pa.Table] = []
    bad: list[pa.Table] = []
    for batch, _ in FileSource("f", path, batch_rows=700, **AMPDS2).read(None, bad.append):
        batches.append(batch)
    records = pa.concat_tables(bad).to_pylist()
    assert [(r["location"], r["field"]) for r in records] == [
        ("line 1001", "FGE"),
        ("line 2501", "HPE"),
        ("line 3001", None),
        ("line 4003", "CDE"),
    ]
    assert records[0]["raw"] == lines[1000].strip()
    total = sum(b.num_rows for b in batches)
    assert total == demo.points.num_rows - 3  # three bad cells, every other value kept


def test_resume_mid_file_after_a_crash_loses_and_repeats_nothing(demo, tmp_path: Path):
    path = demo.write_csv(tmp_path / "Electricity_P.csv")
    first: list[pa.Table] = []
    position = None
    for k, (batch, pos) in enumerate(
        FileSource("f", path, batch_rows=500, **AMPDS2).read(None, lambda _: None)
    ):
        first.append(batch)
        position = pos
        if k == 3:
            break  # the process dies here
    state = position["files"][str(path.absolute())]
    assert not state["done"] and state["rows_done"] == 2000 and 0 < state["offset"] < path.stat().st_size
    rest = [b for b, _ in FileSource("f", path, batch_rows=500, **AMPDS2).read(position, lambda _: None)]
    assert canon(pa.concat_tables(first + rest)).equals(canon(demo.points))
    # finished: nothing again; changed: everything again
    *_, (_, done) = FileSource("f", path, batch_rows=500, **AMPDS2).read(position, lambda _: None)
    assert list(FileSource("f", path, **AMPDS2).read(done, lambda _: None)) == []
    with path.open("a") as f:
        f.write("9999999999,1" + ",1" * 22 + "\n")
    again = [b for b, _ in FileSource("f", path, **AMPDS2).read(done, lambda _: None)]
    assert sum(b.num_rows for b in again) == demo.points.num_rows + 23


def test_resume_parquet_mid_row_group(demo, tmp_path: Path):
    path = tmp_path / "long.parquet"
    pq.write_table(demo.points.cast(PLAIN), path, row_group_size=30_000)
    source = FileSource("f", path, batch_rows=8_000, **AMPDS2)
    taken, position = [], None
    for k, (batch, pos) in enumerate(source.read(None, lambda _: None)):
        taken.append(batch)
        position = pos
        if k == 4:
            break
    assert position["files"][str(path)]["rows_done"] == 38_000  # 30,000 + 8,000 into the second group
    rest = [b for b, _ in FileSource("f", path, batch_rows=8_000, **AMPDS2).read(position, lambda _: None)]
    assert canon(pa.concat_tables(taken + rest)).equals(canon(demo.points))


def test_parquet_bad_cells_name_their_row(tmp_path: Path):
    path = tmp_path / "w.parquet"
    pq.write_table(
        pa.table({"UNIX_TS": [0, 60, None], "A": ["1", "abc", "3"], "B": [1.0, float("inf"), 2.0]}), path
    )
    points, bad = read_file(path, series_prefix="x/y/", field_suffix="")
    assert [(r["location"], r["field"], r["reason"], r["raw"]) for r in bad.to_pylist()] == [
        ("row 2", "A", "not a number", "abc"),
        ("row 2", "B", "not a finite number", "inf"),
        ("row 3", "UNIX_TS", "missing timestamp", "None"),
    ]
    assert triples(points) == [("x/y/A", 0, 1.0), ("x/y/B", 0, 1.0)]


def test_folders_globs_and_empty_files(demo, tmp_path: Path):
    demo.write_csv(tmp_path / "a.csv")
    demo.write_parquet(tmp_path / "b.parquet")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header_only.csv").write_text("UNIX_TS,WHE\n")
    (tmp_path / "notes.md").write_text("not data")
    source = FileSource("f", tmp_path, **AMPDS2)
    assert [p.name for p in source.files()] == ["a.csv", "b.parquet", "empty.csv", "header_only.csv"]
    positions = [pos for _, pos in source.read(None, lambda _: None)]
    assert all(state["done"] for state in positions[-1]["files"].values())
    assert read_all(source).num_rows == 2 * demo.points.num_rows
    assert [p.name for p in FileSource("g", str(tmp_path / "*.parquet"), **AMPDS2).files()] == ["b.parquet"]
    assert FileSource("g", str(tmp_path / "*.nothing"), **AMPDS2).files() == []


def test_missing_and_unreadable_inputs_are_named(tmp_path: Path):
    with pytest.raises(ConnectorError, match=r"nope\.csv: no such file or folder"):
        list(FileSource("f", tmp_path / "nope.csv", **AMPDS2).read(None, lambda _: None))
    with pytest.raises(ConnectorError, match=r"nope\.csv: no such file"):
        read_file(tmp_path / "nope.csv", **AMPDS2)
    (tmp_path / "data.bin").write_text("x")
    with pytest.raises(ConnectorError, match=r"data\.bin: cannot tell CSV from Parquet"):
        read_file(tmp_path / "data.bin", **AMPDS2)
    (tmp_path / "fake.parquet").write_text("not parquet")
    with pytest.raises(ConnectorError, match=r"fake\.parquet: not a readable Parquet file"):
        read_file(tmp_path / "fake.parquet", **AMPDS2)
    (tmp_path / "long.csv").write_text("series_id,value\na/b/c,1\n")
    with pytest.raises(ConnectorError, match=r"long\.csv: header series_id,value lacks series_id, ts, value"):
        read_file(tmp_path / "long.csv", **AMPDS2)
    (tmp_path / "wide.csv").write_text("UNIX_TS,bad name\n0,1\n")
    with pytest.raises(ConnectorError, match=r"column\(s\) 'bad name' give no valid series id"):
        read_file(tmp_path / "wide.csv", **AMPDS2)
    pq.write_table(pa.table({"UNIX_TS": [0], "A": [1.0]}), tmp_path / "iso.parquet")
    with pytest.raises(ConnectorError, match=r"column UNIX_TS holds numbers; set ts_unit"):
        read_file(tmp_path / "iso.parquet", ts_unit="iso", **AMPDS2)
    pq.write_table(pa.table({"UNIX_TS": [[0]], "A": [1.0]}), tmp_path / "list.parquet")
    with pytest.raises(ConnectorError, match=r"column UNIX_TS of type list<.*> is not a timestamp"):
        read_file(tmp_path / "list.parquet", **AMPDS2)
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.csv"
        locked.write_text("UNIX_TS,A\n0,1\n")
        locked.chmod(0)
        with pytest.raises(ConnectorError, match=r"cannot read .*locked\.csv"):
            read_file(locked, **AMPDS2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"format": "xlsx"}, "format='xlsx'"),
        ({"layout": "tall"}, "layout='tall'"),
        ({"ts_unit": "ns"}, "ts_unit='ns'"),
        ({"batch_rows": 0}, "batch_rows must be"),
        ({"max_line_bytes": 0}, "max_line_bytes must be"),
    ],
)
def test_bad_settings_are_config_errors(kwargs, match, tmp_path: Path):
    with pytest.raises(ConfigError, match=match):
        FileSource("f", tmp_path, **kwargs, **AMPDS2)


def test_crlf_bom_blank_lines_and_chunks_of_only_bad_lines(tmp_path: Path):
    path = tmp_path / "win.csv"
    path.write_bytes(b"\xef\xbb\xbfUNIX_TS,A\r\n0,1\r\n\r\nx,2\r\ny,3\r\n120,4\r\n")
    seen: list[pa.Table] = []
    batches = list(
        FileSource("f", path, series_prefix="x/y/", field_suffix="", batch_rows=2).read(None, seen.append)
    )
    assert [b.num_rows for b, _ in batches] == [1, 0, 1]
    assert [(r["location"], r["raw"]) for r in pa.concat_tables(seen).to_pylist()] == [
        ("line 4", "x,2"),
        ("line 5", "y,3"),
    ]
    assert batches[-1][1]["files"][str(path)]["rows_done"] == 5
    (tmp_path / "iso.csv").write_text("ts,A\n0,1\n1970-01-01T00:01:00Z,2\n")
    points, bad = read_file(tmp_path / "iso.csv", ts_unit="iso", series_prefix="x/y/", field_suffix=".P")
    assert triples(points) == [("x/y/A.P", 60_000_000, 2.0)]
    assert bad["reason"].to_pylist() == [
        "malformed timestamp; expected ISO-8601 such as 2012-04-01T07:00:00Z"
    ]


def test_bytes_that_are_not_utf8_spoil_only_their_cell(tmp_path: Path):
    path = tmp_path / "odd.csv"
    path.write_bytes(b"UNIX_TS,A,B\n0,1,2\n60,\xff\xfe,3\n\xff,4,5\n120,6,\xc3\xa9\n")
    points, bad = read_file(path, series_prefix="x/y/", field_suffix="")
    assert [(r["location"], r["field"]) for r in bad.to_pylist()] == [
        ("line 3", "A"),
        ("line 4", "UNIX_TS"),
        ("line 5", "B"),
    ]
    assert triples(points) == [
        ("x/y/A", 0, 1.0),
        ("x/y/A", 120_000_000, 6.0),
        ("x/y/B", 0, 2.0),
        ("x/y/B", 60_000_000, 3.0),
    ]
    (tmp_path / "twice.csv").write_text("UNIX_TS,A,A\n0,1,2\n")
    with pytest.raises(ConnectorError, match=r"twice\.csv: column\(s\) A appear more than once"):
        read_file(tmp_path / "twice.csv", **AMPDS2)


# ---- poison inputs: one bad line never costs the file its good ones (issue 10, items 1 and 4)


def test_an_out_of_range_timestamp_is_quarantined_and_the_file_kept(tmp_path: Path):
    path = tmp_path / "meters.csv"  # a millisecond timestamp in a seconds file: year 52,671
    path.write_text("UNIX_TS,WHE\n0,1\n1600000000000,2\n60,3\n-62135596801,4\n253370764799,5\n")
    got, bad = read_file(path, **AMPDS2)
    assert triples(got) == [
        ("ampds2/electricity/WHE.P", 0, 1.0),
        ("ampds2/electricity/WHE.P", 60_000_000, 3.0),
        ("ampds2/electricity/WHE.P", 253_370_764_799_000_000, 5.0),  # 9998-12-31T23:59:59Z: the last second
    ]
    assert [(r["location"], r["field"]) for r in bad.to_pylist()] == [
        ("line 3", "UNIX_TS"),
        ("line 5", "UNIX_TS"),
    ]
    assert all("years 1 to 9998" in r for r in bad.column("reason").to_pylist())


def test_out_of_range_iso_and_parquet_timestamps_are_quarantined(tmp_path: Path):
    iso = tmp_path / "iso.csv"
    iso.write_text("ts,WHE\n2024-01-01T00:00:00Z,1\n9999-06-01T00:00:00Z,2\n")
    got, bad = read_file(iso, ts_unit="iso", **AMPDS2)
    assert got.column("value").to_pylist() == [1.0] and bad.column("location").to_pylist() == ["line 3"]
    seconds = pa.array([0, 300_000 * 365 * 86_400], pa.timestamp("s"))  # year 300,000 overflows µs
    path = tmp_path / "far.parquet"
    pq.write_table(pa.table({"UNIX_TS": seconds, "WHE": [1.0, 2.0]}), path)
    got, bad = read_file(path, **AMPDS2)
    assert triples(got) == [("ampds2/electricity/WHE.P", 0, 1.0)]
    assert bad.column("location").to_pylist() == ["row 2"]


def test_cr_only_line_endings_are_lines(tmp_path: Path):
    path = tmp_path / "mac.csv"
    path.write_bytes(b"UNIX_TS,WHE\r0,1\r60,abc\r120,3\r")
    got, bad = read_file(path, **AMPDS2)
    assert [v for _, _, v in triples(got)] == [1.0, 3.0]
    assert bad.column("location").to_pylist() == ["line 3"]


def test_a_stray_cr_ends_a_line_and_costs_only_the_broken_part(tmp_path: Path):
    path = tmp_path / "stray.csv"
    path.write_bytes(b"UNIX_TS,WHE\r\n0,1\r\n60,2\r3\r\n120,4\n180,5\r")
    got, bad = read_file(path, **AMPDS2)
    assert [v for _, _, v in triples(got)] == [1.0, 2.0, 4.0, 5.0]
    assert [(r["location"], r["reason"]) for r in bad.to_pylist()] == [("line 4", "expected 2 fields, got 1")]


def test_a_non_utf8_header_is_one_clear_error(tmp_path: Path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("UNIX_TS,WHÉ\n0,1\n".encode("latin-1"))
    with pytest.raises(
        ConnectorError, match=r"latin1\.csv:1: the header is not UTF-8 text \(byte 0xc9 at column 11\)"
    ):
        read_file(path, **AMPDS2)


def test_a_line_too_long_is_quarantined_unread_and_the_others_kept(tmp_path: Path):
    path = tmp_path / "long.csv"
    path.write_bytes(b"UNIX_TS,WHE\n0,1\n60," + b"9" * 5000 + b"\n120,3\n180," + b"8" * 3000)
    bad: list[pa.Table] = []
    source = FileSource("f", path, batch_rows=2, max_line_bytes=1000, **AMPDS2)
    got = read_all(source, bad.append)
    assert [v for _, _, v in triples(got)] == [1.0, 3.0]
    rows = pa.concat_tables(bad).to_pylist()
    assert [(r["location"], r["reason"]) for r in rows] == [
        ("line 3", "line of 5,004 bytes is longer than 1,000 bytes"),
        ("line 5", "line of 3,004 bytes is longer than 1,000 bytes"),
    ]
    assert rows[0]["raw"].startswith("60,999") and len(rows[0]["raw"]) == 1024


MEMORY_PROBE = """
import re, sys
from sparkhu.connectors.files import read_file
got, bad = read_file(sys.argv[1], series_prefix="ampds2/electricity/", field_suffix=".P")
# VmHWM: this process's peak RSS (ru_maxrss would carry the forking parent's peak over exec)
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(got.num_rows, bad.num_rows, peak_kb // 1024)
"""


def test_a_100_mb_line_is_quarantined_in_bounded_memory(tmp_path: Path):
    path = tmp_path / "huge.csv"
    with path.open("wb") as f:
        f.write(b"UNIX_TS,WHE\n0,1\n60,2\n120,")
        block = b"9" * (1 << 20)
        for _ in range(100):
            f.write(block)
        f.write(b"\n180,4\n")
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    points_read, quarantined, max_rss_mb = map(int, done.stdout.split())
    assert (points_read, quarantined) == (3, 1)
    assert max_rss_mb < 300, f"peak RSS {max_rss_mb} MB reading a file with a 100 MB line"
