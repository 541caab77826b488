"""analyse: period and decision on real series (taylor, co2, WaterFlow, the demo), synthetic clocks, speed."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import statsmodels.datasets.co2 as co2_data
from pmdarima.datasets import load_taylor
from river.datasets import WaterFlow
from sklearn.cluster import MeanShift, estimate_bandwidth

from sparkhu.demo.generator import generate
from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import SeriesMeta, TaskInput
from sparkhu.pipeline.tasks.regularity import analyse, decide

SID = "a/b/c"
T0 = pd.Timestamp("2024-03-01", tz="UTC")


def run(ts, start=None, end=None, **params):
    ts = pd.DatetimeIndex(ts).as_unit("us")
    frame = pd.DataFrame({"ts": ts, "value": 1.0})
    start = start if start is not None else ts.min().floor("D")
    end = end if end is not None else ts.max().floor("D") + pd.Timedelta(days=1)
    return analyse(TaskInput(SID, {"points": frame}, SeriesMeta(SID), start, end), **params)


def clock(seconds):
    return T0 + pd.to_timedelta(np.sort(np.asarray(seconds, dtype=np.float64)), unit="s")


def real_series():
    taylor = pd.date_range("2000-06-05", periods=load_taylor(as_series=False).size, freq="30min", tz="UTC")
    co2 = co2_data.load_pandas().data
    co2_ts = co2.index[co2["co2"].notna()].tz_localize("UTC")  # the 59 NaN weeks are gaps
    water = pd.to_datetime(pd.read_csv(WaterFlow().path)["Time"], utc=True)  # CET/CEST → UTC
    demo = generate(days=7, meters=10, seed=7).points.to_pandas()
    whe = demo[demo.series_id == "ampds2/electricity/WHE.P"]["ts"].drop_duplicates()  # + jittered lines
    return {
        "taylor": (taylor, 1800.0),
        "co2": (co2_ts, 604800.0),
        "WaterFlow": (water, 3600.0),
        "demo WHE": (whe, 60.0),
    }


def test_real_series_are_regular_with_their_period():
    print("\nseries       period_s  regular  periodic_error  rms_residual")
    for name, (ts, period) in real_series().items():
        window = 60 if name != "co2" else 366 * 50
        out = run(ts, start=ts.max().floor("D"), window_days=window)
        meta = out.metadata
        print(f"{name:12s} {meta['period_s']:9.0f}  {meta['regular']!s:7s}  {meta['periodic_error']:14.4f}"
              f"  {out.report['rms_residual']:12.4f}")  # fmt: skip
        assert meta["period_s"] == period and meta["regular"] is True, name


@pytest.mark.parametrize(
    ("name", "seconds", "period", "regular"),
    [
        ("2-min clock", np.arange(5040) * 120.0, 120.0, True),
        (
            "jitter σ=2 s",
            np.arange(10_080) * 60.0 + np.random.default_rng(1).normal(0, 2, 10_080),
            60.0,
            True,
        ),
        (
            "jitter σ=5 s",
            np.arange(10_080) * 60.0 + np.random.default_rng(2).normal(0, 5, 10_080),
            60.0,
            True,
        ),
        ("30 % lost", (np.arange(10_080) * 60.0)[np.random.default_rng(3).random(10_080) > 0.3], 60.0, True),
        ("250 ms clock", np.arange(4000) * 0.25, 0.25, True),
        ("1.5 s clock", np.arange(4000) * 1.5, 1.5, True),
        ("Poisson", np.cumsum(np.random.default_rng(4).exponential(60, 10_080)), None, False),
        ("uniform random", np.random.default_rng(5).uniform(0, 7 * 86400, 10_080), None, False),
    ],
)
def test_synthetic_clocks(name, seconds, period, regular):
    out = run(clock(seconds))
    print(f"\n{name}: {out.report}")
    assert out.metadata["regular"] is regular
    if period is not None:
        assert out.metadata["period_s"] == period
    else:
        assert out.metadata["periodic_error"] > 0.5


def test_faster_than_meanshift_and_same_period():
    rng = np.random.default_rng(6)
    seconds = np.arange(10_080) * 60.0 + rng.normal(0, 1, 10_080)
    seconds = seconds[rng.random(seconds.size) > 0.02]
    ts_us = np.rint(np.sort(seconds) * 1e6).astype(np.int64)
    t = time.perf_counter()
    ours = decide(ts_us)
    ours_s = time.perf_counter() - t
    diffs = (np.diff(ts_us) / 1e6).reshape(-1, 1)
    t = time.perf_counter()
    shift = MeanShift(bandwidth=estimate_bandwidth(diffs, quantile=0.3, n_samples=500, random_state=0),
                      bin_seeding=True).fit(diffs)  # fmt: skip
    largest = np.bincount(shift.labels_).argmax()
    original = float(np.floor(diffs[shift.labels_ == largest].mean()))  # the original's rule
    shift_s = time.perf_counter() - t
    print(f"\nperiod: ours {ours['period_s']} s in {ours_s * 1000:.2f} ms; "
          f"MeanShift {original} s in {shift_s * 1000:.0f} ms")  # fmt: skip
    assert ours["period_s"] == original == 60.0
    assert ours_s < shift_s / 10


def test_window_limits_the_history_and_one_row_per_day():
    old = np.arange(0, 20 * 86400, 30.0)  # 20 days at 30 s...
    new = 20 * 86400 + np.arange(0, 5 * 86400, 120.0)  # ...then 5 days at 2 min
    ts = clock(np.r_[old, new])
    start = T0 + pd.Timedelta(days=23)
    out = run(ts, start=start, end=start + pd.Timedelta(days=2), window_days=3)
    table = out.frames["regularity"]
    assert table["ts"].tolist() == [start, start + pd.Timedelta(days=1)]
    assert table["period_s"].tolist() == [120.0, 120.0] and table["regular"].tolist() == [True, True]
    assert str(table["ts"].dtype) == "datetime64[us, UTC]"
    assert run(ts, start=start, end=start + pd.Timedelta(days=1), window_days=60).metadata["period_s"] == 30.0


def test_too_few_points_give_no_decision():
    out = run(clock([0, 60, 120, 180]))
    assert out.skipped is not None and "fewer than 5" in out.skipped and not out.metadata
    dup = run(clock([0, 0, 0, 0, 0, 60]))  # 6 points but only two distinct timestamps
    assert dup.skipped is not None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window_days": 0}, "a/b/c: regularity: need window_days > 0"),
        ({"tolerance": 0.5}, "0 < tolerance < 0.5"),
        ({"max_error": 2}, "0 <= max_error <= 1"),
    ],
)
def test_bad_parameters_raise(params, message):
    with pytest.raises(PipelineError, match=message):
        run(clock(np.arange(10) * 60.0), **params)


def test_malformed_frame_raises():
    frame = pd.DataFrame({"ts": np.arange(10), "value": 1.0})
    with pytest.raises(PipelineError, match="regularity: ts has dtype int64"):
        analyse(TaskInput(SID, {"points": frame}, SeriesMeta(SID), T0, T0 + pd.Timedelta(days=1)))


def test_speed_on_a_week_of_minutes():
    ts = clock(np.arange(10_080) * 60.0 + np.random.default_rng(7).normal(0, 1, 10_080))
    start = T0 + pd.Timedelta(days=6)
    best = min(_timed(lambda: run(ts, start=start, end=start + pd.Timedelta(days=1))) for _ in range(5))
    print(f"\nregularity: {best * 1000:.2f} ms for 10,080 points")
    assert best < 0.05


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t
