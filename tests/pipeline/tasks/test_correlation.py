"""Correlation across series: the demo's whole-house meter, lagged copies, screening at scale."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from sparkhu.demo.generator import generate, series_id
from sparkhu.errors import PipelineError
from sparkhu.pipeline.tasks.correlation import correlate


def long_frame(series: dict[str, np.ndarray], start="2024-01-01", freq="min") -> pd.DataFrame:
    parts = []
    for name, values in series.items():
        ts = pd.date_range(start, periods=len(values), freq=freq, tz="UTC").as_unit("us")
        parts.append(pd.DataFrame({"series_id": name, "ts": ts, "value": np.asarray(values, dtype=float)}))
    return pd.concat(parts, ignore_index=True)


def test_whole_house_meter_correlates_with_its_biggest_sub_meters():
    data = generate(days=7, meters=12, seed=5)
    points = data.points.to_pandas()
    points["series_id"] = points["series_id"].astype(str)
    out = correlate({"points": points}, top=20)
    pairs = out.frames["pairs"]
    print("\n" + pairs.drop(columns="ts").head(10).to_string(index=False))
    whe = series_id("WHE")
    with_whe = pairs[(pairs.series_a == whe) | (pairs.series_b == whe)]
    partners = set(with_whe.series_a) | set(with_whe.series_b)
    biggest = data.clean[data.meters].std().sort_values(ascending=False).index[:2]
    for meter in biggest:
        assert series_id(meter) in partners, (meter, with_whe)
    top = with_whe.iloc[0]
    assert top.pearson > 0.5 and top.lag == 0 and top.n > 9000
    assert out.report["freq_s"] == 60.0
    assert len(out.report["pairs"]) == len(pairs)


def test_a_lagged_copy_is_found_at_its_lag_through_the_screen():
    rng = np.random.default_rng(7)
    series = {f"wn/s{i:02d}/x": rng.normal(size=3000) for i in range(60)}  # unrelated distractors
    base = rng.normal(size=3007)
    series["lag/a/x"] = base[7:]  # a(t) = base(t + 7)
    series["lag/b/x"] = base[:3000] + rng.normal(0, 0.2, 3000)  # b(t) = base(t): b(t + 7) = a(t)
    out = correlate({"points": long_frame(series)}, max_lag=30, top=5, candidates=50)
    assert out.report["pairs_total"] > out.report["pairs_exact"] == 50
    row = out.frames["pairs"].query("series_a == 'lag/a/x' and series_b == 'lag/b/x'").iloc[0]
    assert row.lag == 7 * 60
    assert row.pearson > 0.95 and row.spearman > 0.95 and row.n == 3000 - 7


def test_spearman_sees_a_monotone_relation_pearson_underrates():
    x = np.random.default_rng(2).normal(size=2000).cumsum() / 10
    out = correlate({"points": long_frame({"m/a/x": x, "m/b/x": np.exp(x)})}, max_lag=0)
    row = out.frames["pairs"].iloc[0]
    assert row.spearman == pytest.approx(1.0)
    assert row.pearson < 0.99


def test_common_frequency_is_the_coarsest_period_and_gaps_are_pairwise():
    x = np.random.default_rng(3).normal(size=2000).cumsum()
    minutely = long_frame({"f/a/x": np.repeat(x, 5)})
    five = long_frame({"f/b/x": x}, freq="5min")
    five = five.drop(index=range(100, 300))
    out = correlate({"points": pd.concat([minutely, five])}, max_lag=2)
    row = out.frames["pairs"].iloc[0]
    assert out.report["freq_s"] == 300.0
    assert row.pearson == pytest.approx(1.0) and row.lag == 0 and row.n == 1800


def test_constant_series_are_excluded_and_ts_is_the_interval_start():
    x = np.random.default_rng(4).normal(size=500)
    frames = {"points": long_frame({"c/a/x": x, "c/b/x": x + 1, "c/c/x": np.ones(500)})}
    out = correlate(frames, start="2024-01-01")
    assert out.report["excluded"] == ["c/c/x"]
    assert out.frames["pairs"]["ts"].tolist() == [pd.Timestamp("2024-01-01", tz="UTC")]
    assert str(out.frames["pairs"]["ts"].dtype) == "datetime64[us, UTC]"
    assert "1 series" in correlate({"points": long_frame({"c/a/x": x})}).skipped


def test_malformed_input_raises():
    with pytest.raises(PipelineError, match=r"lacks column.*series_id"):
        correlate({"points": pd.DataFrame({"ts": [], "value": []})})
    with pytest.raises(PipelineError, match="needs a 'points' frame"):
        correlate({})
    frame = long_frame({"a/b/c": np.arange(50.0)})
    with pytest.raises(PipelineError, match="integer top >= 1"):
        correlate({"points": frame}, top=0)
    with pytest.raises(PipelineError, match="max_lag >= 0"):
        correlate({"points": frame}, max_lag=-1)
    with pytest.raises(PipelineError, match="freq_s > 0"):
        correlate({"points": frame}, freq_s=0)


def test_two_hundred_series_of_a_week_in_seconds():
    rng = np.random.default_rng(9)
    factors = rng.normal(size=(5, 10_080)).cumsum(axis=1)
    series = {f"b/s{i:03d}/x": factors[i % 5] + rng.normal(0, 5, 10_080) for i in range(200)}
    frames = {"points": long_frame(series)}
    t0 = time.perf_counter()
    out = correlate(frames)
    elapsed = time.perf_counter() - t0
    print(f"\ncorrelate 200 series x 10,080 points: {elapsed:.2f} s ({out.report['pairs_total']} pairs)")
    assert len(out.frames["pairs"]) == 20 and (out.frames["pairs"]["pearson"] > 0.9).all()
    assert elapsed < 20
