"""run_daily_step / catch_up on a real lake, a real SQLite catalog and the local engine."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from sparkhu.engine.local import LocalEngine
from sparkhu.errors import LakeError, PipelineError
from sparkhu.pipeline.step import STEP_NAME, catch_up, run_daily_step
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake

DAY = date(2024, 3, 1)
T0 = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp() * 1_000_000)
S = 1_000_000


@pytest.fixture
def lake(tmp_path):
    return Lake(str(tmp_path / "lake"))


@pytest.fixture
def catalog(tmp_path):
    with Catalog(f"sqlite:///{tmp_path / 'catalog.db'}") as cat:
        yield cat


@pytest.fixture
def engine():
    with LocalEngine(workers=1) as eng:
        yield eng


def raw_day(lake):
    """Two series on DAY: duplicates, jitter, a point that snaps to the next midnight."""
    a = points(
        "home/power/A",
        [T0 + 1 * S, T0 + 59 * S, T0 + 61 * S, T0 + 120 * S, T0 + 86_395 * S],
        [1.0, 2.0, 4.0, 5.0, 9.0],
    )
    b = points("home/power/B", [T0, T0 + 60 * S, T0 + 60 * S], [7.0, 8.0, 8.5])
    lake.write("raw", "meters", a)
    lake.write("raw", "meters", b)
    lake.write("raw", "meters", points("home/power/B", [T0 + 60 * S], [8.75]))  # later file wins


def test_step_dedups_resamples_and_records_the_run(lake, catalog, engine):
    raw_day(lake)
    result = run_daily_step(lake, catalog, engine, DAY, ("raw", "meters"))
    assert (result.status, result.rows_in, result.rows_out, result.series) == ("success", 7, 5, 2)
    clean = lake.read("clean", "meters")
    got = list(
        zip(
            clean["series_id"].to_pylist(),
            clean["ts"].cast("int64").to_pylist(),
            clean["value"].to_pylist(),
            strict=True,
        )
    )
    assert got == [
        ("home/power/A", T0, 1.0),
        ("home/power/A", T0 + 60 * S, 3.0),
        ("home/power/A", T0 + 120 * S, 5.0),
        ("home/power/B", T0, 7.0),
        ("home/power/B", T0 + 60 * S, 8.75),
    ]  # A's 23:59:55 point belongs to the next day's midnight slot
    [run] = catalog.runs(kind="pipeline", name=STEP_NAME)
    assert (run.status, run.rows_in, run.rows_out, run.error) == ("success", 7, 5, None)
    assert run.interval_start == datetime(2024, 3, 1, tzinfo=UTC)
    assert run.params == {"src": "raw/meters", "dst": "clean/meters", "period_s": 60}
    assert run.finished_at is not None


def test_rerun_is_idempotent(lake, catalog, engine):
    raw_day(lake)
    run_daily_step(lake, catalog, engine, DAY, ("raw", "meters"))
    first = lake.read("clean", "meters", dedup=False)
    files = lake.files("clean", "meters")
    run_daily_step(lake, catalog, engine, DAY, ("raw", "meters"))
    again = lake.read("clean", "meters", dedup=False)
    assert again.equals(first) and len(lake.files("clean", "meters")) == len(files)
    assert [r.status for r in catalog.runs(name=STEP_NAME)] == ["success", "success"]


def test_midnight_slot_gathers_points_from_the_day_before(lake, catalog, engine):
    raw_day(lake)
    lake.write("raw", "meters", points("home/power/A", [T0 + 86_400 * S + 3 * S], [11.0]))
    result = run_daily_step(lake, catalog, engine, DAY + timedelta(days=1), ("raw", "meters"), ("clean", "x"))
    out = lake.read("clean", "x")
    assert result.rows_out == 1
    assert out["ts"].cast("int64").to_pylist() == [T0 + 86_400 * S]
    assert out["value"].to_pylist() == [10.0]  # mean of 9.0 (day before) and 11.0


def test_catch_up_runs_only_missed_days(lake, catalog, engine):
    for k in range(3):
        lake.write("raw", "m", points("s/m/x", T0 + k * 86_400 * S + np.arange(3) * 60 * S, [1.0, 2, 3]))
    run_daily_step(lake, catalog, engine, DAY + timedelta(days=1), ("raw", "m"))
    done = catch_up(lake, catalog, engine, DAY, DAY + timedelta(days=2), ("raw", "m"))
    assert [r.day for r in done] == [DAY, DAY + timedelta(days=2)]
    assert catch_up(lake, catalog, engine, DAY, DAY + timedelta(days=2), ("raw", "m")) == []
    assert lake.read("clean", "m").num_rows == 9
    # another period is another job: every day runs again
    assert len(catch_up(lake, catalog, engine, DAY, DAY + timedelta(days=2), ("raw", "m"), period_s=120)) == 3
    forced = catch_up(lake, catalog, engine, DAY, DAY, ("raw", "m"), force=True)
    assert [r.day for r in forced] == [DAY]


def test_empty_day_clears_destination(lake, catalog, engine):
    raw_day(lake)
    run_daily_step(lake, catalog, engine, DAY, ("raw", "meters"))
    lake.drop_partitions("raw", "meters", ["date=2024-03-01"])
    result = run_daily_step(lake, catalog, engine, DAY, ("raw", "meters"))
    assert (result.rows_in, result.rows_out) == (0, 0)
    assert lake.read("clean", "meters").num_rows == 0


def test_storage_error_is_recorded_then_raised(lake, catalog, engine):
    with pytest.raises(LakeError):
        run_daily_step(lake, catalog, engine, DAY, ("nozone", "meters"))
    [run] = catalog.runs(name=STEP_NAME)
    assert run.status == "failed" and "nozone" in run.error


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"src": "raw/meters"}, "src must be a \\(zone, dataset\\) pair"),
        ({"src": ("raw", "")}, "src must be a \\(zone, dataset\\) pair"),
        ({"dst": ("clean",)}, "dst must be a \\(zone, dataset\\) pair"),
        ({"day": "2024-03-01"}, "day must be a datetime.date"),
        ({"day": datetime(2024, 3, 1)}, "day must be a datetime.date"),
        ({"period_s": 0}, "period_s must be a positive number"),
    ],
)
def test_malformed_arguments_rejected(lake, catalog, engine, kwargs, message):
    args = {"day": DAY, "src": ("raw", "meters")} | kwargs
    with pytest.raises(PipelineError, match=message):
        run_daily_step(lake, catalog, engine, **args)
    assert catalog.runs() == []


def test_catch_up_rejects_reversed_range(lake, catalog, engine):
    with pytest.raises(PipelineError, match="end 2024-02-01 is before start 2024-03-01"):
        catch_up(lake, catalog, engine, DAY, date(2024, 2, 1), ("raw", "meters"))
