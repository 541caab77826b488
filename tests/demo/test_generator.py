"""The AMPds2-like generator: deterministic, WHE = Σ clean sub-meters, every defect present and true."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sparkhu.demo.generator import (
    AMPDS2_COLUMNS,
    AMPDS2_START,
    DEFECT_KINDS,
    DEFECT_SCHEMA,
    DemoData,
    generate,
    meter_names,
    series_id,
)
from sparkhu.errors import InputError
from sparkhu.series import POINT_SCHEMA


@pytest.fixture(scope="module")
def data() -> DemoData:
    return generate(days=14, meters=11, seed=7)


def _sec(ts: pa.Scalar) -> int:
    return int(ts.value // 1_000_000)


def test_same_seed_same_data_other_seed_other_data(data: DemoData):
    again = generate(days=14, meters=11, seed=7)
    pd.testing.assert_frame_equal(data.wide, again.wide)
    assert data.points.equals(again.points)
    assert data.defects.equals(again.defects)
    other = generate(days=14, meters=11, seed=8)
    assert not np.array_equal(other.clean["FGE"].to_numpy(), data.clean["FGE"].to_numpy())
    assert not other.defects.equals(data.defects)


def test_a_meter_does_not_depend_on_which_others_were_picked(data: DemoData):
    everything = generate(days=14, meters=22, seed=7, defects=False)
    for meter in data.meters:
        np.testing.assert_array_equal(everything.clean[meter].to_numpy(), data.clean[meter].to_numpy())


def test_layout_is_ampds2(data: DemoData):
    assert list(data.wide.columns) == ["UNIX_TS", "WHE", *data.meters]
    assert data.meters == [m for m in AMPDS2_COLUMNS if m in data.meters]  # header order
    assert {"FGE", "CDE", "DWE", "HPE"} <= set(data.meters)
    assert data.clean["UNIX_TS"].iloc[0] == int(AMPDS2_START.timestamp())
    assert len(data.clean) == 14 * 1440
    assert np.all(np.diff(data.clean["UNIX_TS"].to_numpy()) == 60)
    assert data.points.schema.equals(POINT_SCHEMA)
    assert data.defects.schema.equals(DEFECT_SCHEMA)
    assert meter_names(22) == list(AMPDS2_COLUMNS[1:])
    assert meter_names(24)[-2:] == ["X23E", "X24E"]


def test_whole_house_is_the_sum_of_the_clean_sub_meters(data: DemoData):
    clean = data.clean
    np.testing.assert_array_equal(clean["WHE"].to_numpy(), clean[data.meters].sum(axis=1).to_numpy())
    assert (clean[data.meters] >= 0).all().all()
    assert (clean[data.meters].to_numpy() % 1 == 0).all()  # whole watts, as AMPds2
    # the defective WHE column still carries the clean sum on every line (duplicates and jitter included)
    minute = (data.wide["UNIX_TS"].to_numpy() + 30) // 60 * 60
    expected = clean.set_index("UNIX_TS")["WHE"].reindex(minute).to_numpy()
    np.testing.assert_array_equal(data.wide["WHE"].to_numpy(), expected)


def test_daily_and_appliance_behaviour_is_visible(data: DemoData):
    clean = data.clean
    hour = ((clean["UNIX_TS"] // 60 - 420) % 1440) // 60
    by_hour = clean["WHE"].groupby(hour).mean()
    assert by_hour.loc[[19, 20, 21]].mean() > 1.3 * by_hour.loc[[2, 3, 4]].mean()  # evening peak
    fridge = clean["FGE"].to_numpy()
    switches = np.count_nonzero(np.diff(fridge > 60))
    assert 14 * 24 * 2 * 0.6 < switches < 14 * 24 * 2 * 1.6  # ~ one cycle (two switches) an hour
    assert (clean["CDE"] > 3000).sum() > 30  # dryer runs
    assert clean["HPE"].max() > 1500 and clean["HPE"].min() < 100


def test_every_defect_kind_is_present_and_true(data: DemoData):
    defects = data.defects.to_pylist()
    assert {d["kind"] for d in defects} == set(DEFECT_KINDS)
    wide = data.wide
    clean = data.clean.set_index("UNIX_TS")
    unique = wide.drop_duplicates()  # duplicates are identical lines
    jittered = {_sec(pa.scalar(d["start_ts"])) for d in defects if d["kind"] == "jitter"}
    minute = (unique["UNIX_TS"] + 30) // 60 * 60
    dirty = unique.assign(UNIX_TS=minute).set_index("UNIX_TS")
    assert dirty.index.is_unique and len(dirty) == len(clean)
    touched = pd.DataFrame(False, index=clean.index, columns=clean.columns)
    for d in defects:
        meter = d["series_id"].split("/")[-1].removesuffix(".P")
        a, b = int(d["start_ts"].timestamp()), int(d["end_ts"].timestamp())
        got, truth = dirty.loc[a:b, meter], clean.loc[a:b, meter]
        if d["kind"] == "gap":
            assert got.isna().all()
        elif d["kind"] == "spike":
            assert a == b and got.iloc[0] - truth.iloc[0] >= 2500
        elif d["kind"] == "flatline":
            assert b - a >= 29 * 60 and got.nunique() == 1 and truth.nunique() > 1
        elif d["kind"] == "level_shift":
            offset = float(d["detail"].split()[0])
            diff = (got - truth).dropna()
            assert (diff == offset).mean() > 0.9  # other defects may sit on top
        elif d["kind"] == "duplicate":
            assert (wide["UNIX_TS"] == a).sum() == 2
        elif d["kind"] == "jitter":
            assert a in jittered and a not in set(wide["UNIX_TS"])
            assert d["detail"].startswith("clock ")
        if d["kind"] in ("gap", "spike", "flatline", "level_shift"):
            assert meter != "WHE"
            touched.loc[a:b, meter] = True
    # outside the recorded places the data is exactly the clean data
    same = (dirty == clean) | touched
    assert same.all().all()
    # row-level defects are recorded for every series, WHE included
    dup_series = {d["series_id"] for d in defects if d["kind"] == "duplicate"}
    assert dup_series == {series_id(m) for m in ["WHE", *data.meters]}


def test_points_are_the_wide_cells_that_are_there(data: DemoData):
    cells = data.wide[["WHE", *data.meters]]
    assert data.points.num_rows == int(cells.notna().sum().sum())
    ids = set(pc.unique(data.points["series_id"].combine_chunks().dictionary_decode()).to_pylist())
    assert ids == {f"ampds2/electricity/{m}.P" for m in ["WHE", *data.meters]}
    fge = data.points.filter(pc.equal(data.points["series_id"].cast(pa.string()), series_id("FGE")))
    np.testing.assert_array_equal(fge["value"].to_numpy(), data.wide["FGE"].dropna().to_numpy())


def test_generation_is_fast():
    began = time.perf_counter()
    generate(days=14, meters=22, seed=1)
    assert time.perf_counter() - began < 1.0


def test_write_csv_is_ampds2_style(data: DemoData, tmp_path: Path):
    path = data.write_csv(tmp_path / "Electricity_P.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "UNIX_TS,WHE," + ",".join(data.meters)
    assert len(lines) == 1 + len(data.wide)
    gap = next(d for d in data.defects.to_pylist() if d["kind"] == "gap")
    meter = gap["series_id"].split("/")[-1].removesuffix(".P")
    col = 1 + ["WHE", *data.meters].index(meter)
    gap_line = next(ln for ln in lines if ln.startswith(f"{int(gap['start_ts'].timestamp())},"))
    assert gap_line.split(",")[col] == ""
    dup = next(d for d in data.defects.to_pylist() if d["kind"] == "duplicate")
    dup_lines = [ln for ln in lines if ln.startswith(f"{int(dup['start_ts'].timestamp())},")]
    assert len(dup_lines) == 2 and dup_lines[0] == dup_lines[1]
    assert all("." not in ln for ln in lines[1:50])  # whole watts

    cut = int(data.wide["UNIX_TS"].iloc[1440])
    part = data.write_csv(tmp_path / "part.csv", until_unix_s=cut).read_text().splitlines()
    assert all(int(ln.split(",")[0]) < cut for ln in part[1:]) and len(part) > 1440


def test_short_and_clean_and_shifted_runs():
    short = generate(days=1, meters=10, seed=3, start=datetime(2024, 1, 1, 0, 0, 42, tzinfo=UTC))
    assert {d for d in short.defects["kind"].to_pylist()} == set(DEFECT_KINDS)
    assert short.clean["UNIX_TS"].iloc[0] == int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
    clean = generate(days=1.5, meters=10, seed=3, defects=False)
    assert clean.defects.num_rows == 0 and len(clean.wide) == 2160
    assert clean.points.num_rows == 2160 * 11


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"days": 1, "meters": 9}, "meters=9: expected 10 to 64"),
        ({"days": 1, "meters": 65}, "meters=65"),
        ({"days": 0}, "days=0: expected a positive"),
        ({"days": float("nan")}, "days=nan"),
        ({"days": 1, "start": datetime(2024, 1, 1)}, "timezone-aware"),
        ({"days": 0.001}, "too few to place"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(InputError, match=match):
        generate(**kwargs)
