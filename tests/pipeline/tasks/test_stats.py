"""describe: taylor against pandas/scipy, one row per day, mode of continuous data, edge cases, speed."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from pmdarima.datasets import load_taylor
from scipy import stats as sps

from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import SeriesMeta, TaskInput
from sparkhu.pipeline.tasks.stats import COLUMNS, describe, rounded_mode

T0 = pd.Timestamp("2000-06-05", tz="UTC")  # taylor starts on Monday 5 June 2000
SID = "uk/demand/taylor"


def run(frame, start=T0, end=None):
    end = end if end is not None else T0 + pd.Timedelta(days=1)
    return describe(TaskInput(SID, {"points": frame}, SeriesMeta(SID), start, end))


def taylor():
    values = load_taylor(as_series=False).astype(np.float64)
    ts = pd.date_range(T0, periods=values.size, freq="30min", unit="us")
    return pd.DataFrame({"ts": ts, "value": values})


def test_taylor_week_matches_pandas_and_scipy_per_day():
    data = taylor()
    out = run(data, end=T0 + pd.Timedelta(days=7))
    table = out.frames["stats"]
    assert table["ts"].tolist() == list(pd.date_range(T0, periods=7, freq="D", unit="us"))
    assert list(table.columns) == ["ts", *COLUMNS]
    day = data.set_index("ts")["value"].loc[: T0 + pd.Timedelta(hours=23, minutes=30)]
    row = table.iloc[0]
    assert int(row["count"]) == 48
    expected = {
        "min": day.min(), "max": day.max(), "mean": day.mean(), "median": day.median(),
        "q1": day.quantile(0.25), "q3": day.quantile(0.75), "std": day.std(),
        "skewness": sps.skew(day, bias=False), "kurtosis": sps.kurtosis(day, bias=False),
        "cv": day.std() / day.mean(),
    }  # fmt: skip
    for name, value in expected.items():
        assert row[name] == pytest.approx(value, rel=1e-9), name
    print("\ntaylor, Monday 5 June 2000:", {k: round(float(row[k]), 3) for k in COLUMNS})


def test_mode_of_continuous_and_of_whole_values():
    rng = np.random.default_rng(4)
    normal = rng.normal(50.0, 5.0, 20_000)  # continuous: raw values never repeat
    assert abs(rounded_mode(normal) - 50.0) < 2.0  # 0.4 σ: the sampling noise of a histogram mode
    standby = np.r_[np.full(300, 3.0), np.rint(rng.gamma(2.0, 30.0, 700))]  # whole watts, a fridge's standby
    assert rounded_mode(standby) == 3.0
    assert rounded_mode(np.r_[np.full(60, 7.5), rng.normal(size=40)]) == 7.5  # IQR = 0: exact mode


def test_interval_starting_mid_day_and_points_outside_are_ignored():
    data = taylor()
    start = T0 + pd.Timedelta(hours=12)
    out = run(data, start=start, end=T0 + pd.Timedelta(days=2))
    table = out.frames["stats"]
    assert table["ts"].tolist() == [start, T0 + pd.Timedelta(days=1)]
    assert table["count"].tolist() == [24, 48] and table["count"].dtype == np.int64


def test_constant_and_tiny_days():
    frame = pd.DataFrame({"ts": pd.date_range(T0, periods=3, freq="h", unit="us"), "value": [2.0, 2.0, 2.0]})
    row = run(frame).frames["stats"].iloc[0]
    assert row["std"] == 0.0 and row["cv"] == 0.0 and row["mode"] == 2.0
    assert np.isnan(row["skewness"]) and np.isnan(row["kurtosis"])


def test_no_points_in_the_interval_is_skipped():
    data = taylor()
    out = run(data, start=T0 - pd.Timedelta(days=2), end=T0 - pd.Timedelta(days=1))
    assert out.skipped == "no finite points in the interval" and not out.frames


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"value": [1.0]}), r"taylor: describe: frame lacks column\(s\) ts"),
        (pd.DataFrame({"ts": [T0], "value": ["x"]}), "value has dtype .*; expected float64"),
    ],
)
def test_malformed_frames_raise(frame, message):
    with pytest.raises(PipelineError, match=message):
        run(frame)


def test_speed_on_a_week_of_minutes():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"ts": pd.date_range(T0, periods=10_080, freq="min", unit="us"), "value": rng.normal(size=10_080)}
    )
    best = min(_timed(lambda: run(frame, end=T0 + pd.Timedelta(days=7))) for _ in range(5))
    print(f"\ndescribe: {best * 1000:.2f} ms for 10,080 points (7 daily rows)")
    assert best < 0.05


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t
