"""impute: error per strategy and for auto on taylor and co2 with injected gaps, semantics, bad input."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import statsmodels.datasets.co2 as co2_data
from pmdarima.datasets import load_taylor

from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import SeriesMeta, TaskInput
from sparkhu.pipeline.tasks.imputation import CANDIDATES, STRATEGIES, fill, gap_mask, impute
from sparkhu.pipeline.tasks.missing import detect
from sparkhu.pipeline.tasks.regularity import analyse

SID = "a/b/c"
T0 = pd.Timestamp("2024-03-01", tz="UTC")


def with_gaps(ts, values, lengths, fraction, seed):
    """Remove interior runs with lengths drawn from ``lengths`` until ``fraction`` is gone."""
    rng = np.random.default_rng(seed)
    gone = np.zeros(values.size, dtype=bool)
    while gone.mean() < fraction:
        length = int(rng.choice(lengths))
        at = int(rng.integers(1, values.size - length - 1))
        if not gone[at - 1 : at + length + 1].any():  # keep gaps apart: a known point between
            gone[at : at + length] = True
    return pd.DataFrame({"ts": ts[~gone], "value": values[~gone]}), pd.Series(values[gone], index=ts[gone])


def evaluate(name, ts, values, *, lengths, season_s, fraction=0.1, seed=0):
    """MAE/RMSE of every strategy and of auto on the removed points: the table, the auto choice."""
    points, truth = with_gaps(ts, values, lengths, fraction, seed)
    start, end = ts[0], ts[-1] + (ts[1] - ts[0])
    decision = analyse(TaskInput(name, {"points": points}, SeriesMeta(name), end - pd.Timedelta(days=1), end),
                       window_days=(end - start).days + 1).metadata  # fmt: skip
    meta = SeriesMeta(name, period_s=decision["period_s"], regular=decision["regular"])
    slots = detect(TaskInput(name, {"points": points}, meta, start, end)).frames["slots"]
    assert slots["ts"].tolist() == list(truth.index)  # detection is exact on a regular clock
    inp = TaskInput(name, {"points": points, "slots": slots}, meta, start, end)
    table = {}
    for strategy in ("auto", *CANDIDATES):
        out = impute(inp, strategy=strategy, season_s=season_s)
        filled = out.frames["points"].set_index("ts")["value"].reindex(truth.index)
        err = filled.to_numpy() - truth.to_numpy()
        table[strategy] = (float(np.mean(np.abs(err))), float(np.sqrt(np.mean(err**2))))
        if strategy == "auto":
            choice, scores = out.report["choice"], out.report["scores"]
    print(f"\n{name}: {truth.size} points removed in runs of {lengths}; auto chose {choice}")
    print("strategy   true MAE   true RMSE   back-test MAE")
    for strategy, (mae, rmse) in sorted(table.items(), key=lambda kv: kv[1][0]):
        bt = scores.get(strategy, {}).get("mae", float("nan"))
        print(f"{strategy:9s} {mae:9.2f} {rmse:11.2f} {bt:15.2f}")
    return table, choice


def taylor():
    values = load_taylor(as_series=False).astype(np.float64)
    return pd.date_range("2000-06-05", periods=values.size, freq="30min", tz="UTC", unit="us"), values


def test_taylor_auto_is_near_the_best_and_beats_the_constants():
    ts, values = taylor()
    table, choice = evaluate("uk/demand/taylor", ts, values, lengths=[1, 2, 4, 8, 16], season_s=86400)
    best = min(mae for s, (mae, _) in table.items() if s != "auto")
    auto = table["auto"][0]
    assert auto <= 1.1 * best
    assert auto < table["mean"][0] and auto < table["median"][0] and auto < table["mode"][0]
    assert choice in CANDIDATES


def test_taylor_long_gaps_favour_the_seasonal_strategy():
    ts, values = taylor()
    table, choice = evaluate("uk/demand/taylor", ts, values, lengths=[24, 36, 48], season_s=86400, seed=1)
    assert choice == "seasonal"
    assert table["seasonal"][0] < table["linear"][0]
    assert table["auto"][0] <= 1.1 * min(mae for s, (mae, _) in table.items() if s != "auto")


def test_co2_weekly_with_a_yearly_season():
    data = co2_data.load_pandas().data["co2"].interpolate(limit_area="inside")  # the 59 NaN weeks filled
    ts = data.index.tz_localize("UTC").as_unit("us")
    table, _ = evaluate(
        "noaa/co2/mauna_loa", ts, data.to_numpy(), lengths=[1, 2, 4, 8], season_s=52 * 7 * 86400
    )
    assert table["auto"][0] <= 1.1 * min(mae for s, (mae, _) in table.items() if s != "auto")
    assert table["auto"][0] < table["mean"][0] / 10


def at(seconds):
    return T0 + pd.to_timedelta(np.asarray(seconds, dtype=np.float64), unit="s")


def us(seconds):
    return np.rint(np.asarray(seconds, dtype=np.float64) * 1e6).astype(np.int64)


def test_each_strategy_on_a_small_case():
    t, v = us([0, 60, 120, 300, 360]), np.array([1.0, 2.0, 2.0, 5.0, 9.0])
    q = us([180, 240])
    expected = {
        "mean": [3.8, 3.8], "median": [2.0, 2.0], "locf": [2.0, 2.0], "bocf": [5.0, 5.0],
        "linear": [3.0, 4.0], "seasonal": [3.0, 4.0],  # no point a day before: linear
    }  # fmt: skip
    for strategy, values in expected.items():
        assert fill(strategy, t, v, q).tolist() == pytest.approx(values), strategy
    assert fill("mode", t, v, q).tolist() == [2.0, 2.0]
    assert fill("locf", t, v, us([-60])).tolist() == [1.0] and fill("bocf", t, v, us([400])).tolist() == [9.0]


def test_spline_reproduces_a_cubic_and_seasonal_a_periodic_signal():
    x = np.arange(0, 50) * 60.0
    known = np.ones(x.size, dtype=bool)
    known[[10, 11, 12, 30]] = False
    cubic = (x / 600) ** 3 - 2 * (x / 600) ** 2 + 1
    got = fill("spline", us(x[known]), cubic[known], us(x[~known]))
    assert got == pytest.approx(cubic[~known], rel=1e-9)
    day = np.arange(0, 3 * 1440) * 60.0
    wave = np.sin(2 * np.pi * day / 86400)  # exactly periodic
    hole = (day >= 1.5 * 86400) & (day < 1.6 * 86400)
    seasonal = fill("seasonal", us(day[~hole]), wave[~hole], us(day[hole]), season_us=86400e6, period_us=60e6)
    assert seasonal == pytest.approx(wave[hole], abs=1e-12)


def test_output_is_the_full_grid_inside_the_interval():
    secs = np.arange(0, 7200, 60.0)
    values = np.sin(secs / 600)
    gone = ((secs >= 600) & (secs < 900)) | (secs == 3000)
    points = pd.DataFrame({"ts": at(secs[~gone]).as_unit("us"), "value": values[~gone]})
    meta = SeriesMeta(SID, period_s=60.0, regular=True)
    start, end = at([300])[0], at([6000])[0]
    slots = detect(TaskInput(SID, {"points": points}, meta, start, end)).frames["slots"]
    out = impute(TaskInput(SID, {"points": points, "slots": slots}, meta, start, end), strategy="linear")
    frame = out.frames["points"]
    assert frame["ts"].tolist() == list(at(np.arange(300, 6000, 60.0)).as_unit("us"))
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]" and frame["value"].dtype == np.float64
    assert out.report == {"strategy": "linear", "filled": 6}
    deleted = impute(
        TaskInput(SID, {"points": points, "slots": slots}, meta, start, end), strategy="deletion"
    )
    assert len(deleted.frames["points"]) == len(frame) - 6 and deleted.report["filled"] == 0


def test_auto_is_seeded_and_reports_its_table():
    ts, values = taylor()
    points, _ = with_gaps(ts, values, [1, 3], 0.05, seed=2)
    meta = SeriesMeta(SID, period_s=1800.0, regular=True)
    start, end = ts[0], ts[-1] + pd.Timedelta(minutes=30)
    slots = detect(TaskInput(SID, {"points": points}, meta, start, end)).frames["slots"]
    inp = TaskInput(SID, {"points": points, "slots": slots}, meta, start, end)
    first, again = impute(inp), impute(inp)
    assert first.report == again.report and set(first.report["scores"]) == set(CANDIDATES)
    assert first.report["masked"] >= 0.04 * len(points)
    other = impute(inp, seed=1)
    assert other.report["scores"] != first.report["scores"]
    only = impute(inp, candidates=["mean", "locf"], metric="rmse")
    assert set(only.report["scores"]) == {"mean", "locf"} and only.report["choice"] == "locf"
    no_slots = impute(TaskInput(SID, {"points": points}, meta, start, end))
    assert no_slots.report == {"strategy": "auto", "filled": 0, "choice": None}
    assert len(no_slots.frames["points"]) == len(points)


def test_gap_mask_follows_the_gap_lengths():
    rng = np.random.default_rng(0)
    lengths = np.repeat([1, 10], [90, 10])  # per slot: 90 one-slot gaps and one ten-slot gap
    mask = gap_mask(20_000, lengths, rng, fraction=0.05, max_masked=1000)
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0])))[::2]
    assert 950 <= mask.sum() <= 1010 and not mask[0] and not mask[-1]
    assert 0.4 < np.mean(runs == 1) < 0.99  # about 9 one-point gaps per ten-point one
    assert gap_mask(3, lengths, rng).sum() == 0


def test_too_few_points_are_skipped():
    points = pd.DataFrame({"ts": at([0, 60, 120, 180]).as_unit("us"), "value": [1.0, 2.0, np.nan, 4.0]})
    out = impute(TaskInput(SID, {"points": points}, SeriesMeta(SID, period_s=60.0), T0, at([600])[0]))
    assert out.skipped == "3 known point(s); need at least 5 to impute"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"strategy": "kriging"}, "a/b/c: impute: unknown strategy 'kriging'; expected auto or one of"),
        ({"candidates": ["deletion"]}, "must be a non-empty subset of mean"),
        ({"candidates": []}, "must be a non-empty subset"),
        ({"metric": "mape"}, "metric 'mape'; expected mae or rmse"),
        ({"season_s": 0}, "season_s=0; expected a positive number of seconds"),
        ({"mask_fraction": 0.9}, "need 0 < mask_fraction < 0.5"),
    ],
)
def test_bad_parameters_raise(params, message):
    points = pd.DataFrame({"ts": at(np.arange(10) * 60.0).as_unit("us"), "value": 1.0})
    with pytest.raises(PipelineError, match=message):
        impute(TaskInput(SID, {"points": points}, SeriesMeta(SID, period_s=60.0), T0, at([600])[0]), **params)


def test_malformed_slots_raise():
    points = pd.DataFrame({"ts": at(np.arange(10) * 60.0).as_unit("us"), "value": 1.0})
    slots = pd.DataFrame({"ts": ["yesterday"]})
    with pytest.raises(PipelineError, match=r"impute: ts has dtype .*; expected datetime64"):
        impute(TaskInput(SID, {"points": points, "slots": slots}, SeriesMeta(SID, period_s=60.0), T0, T0))
    with pytest.raises(PipelineError, match="unknown strategy 'nearest'"):
        fill("nearest", us([0, 60]), np.array([1.0, 2.0]), us([30]))


def test_speed_on_a_week_of_minutes():
    rng = np.random.default_rng(0)
    secs = np.arange(10_080) * 60.0
    values = 100 + 50 * np.sin(secs / 86400 * 2 * np.pi) + rng.normal(size=secs.size)
    points, _ = with_gaps(at(secs).as_unit("us"), values, [1, 2, 5, 30], 0.03, seed=3)
    meta = SeriesMeta(SID, period_s=60.0, regular=True)
    start, end = T0, T0 + pd.Timedelta(days=7)
    slots = detect(TaskInput(SID, {"points": points}, meta, start, end)).frames["slots"]
    inp = TaskInput(SID, {"points": points, "slots": slots}, meta, start, end)
    print("\nimpute on 10,080 minutes (3 % missing), best of 5:")
    for strategy in ("auto", *STRATEGIES):
        best = min(_timed(lambda s=strategy: impute(inp, strategy=s)) for _ in range(5))
        print(f"  {strategy:9s} {best * 1000:6.2f} ms")
        assert best < 0.05


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t
