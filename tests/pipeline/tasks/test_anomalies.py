"""Residual anomalies: precision/recall on WaterFlow's anomalous segments and spikes injected into taylor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pmdarima.datasets import load_taylor
from river.datasets import WaterFlow

from sparkhu.demo.generator import generate
from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import SeriesMeta, TaskInput
from sparkhu.pipeline.tasks.anomalies import detect, handle
from sparkhu.pipeline.tasks.decomposition import decompose

# WaterFlow's docstring describes four anomalous segments (three drops to ~24 l/s for
# maintenance or losses, one small pumping peak after the first two) but its CSV carries no
# label column; these are the segments located in the data (UTC, inclusive), the drops
# including their ramps down and up.
WATERFLOW_SEGMENTS = [
    ("2022-03-24 07:00", "2022-03-25 00:00"),
    ("2022-03-29 06:00", "2022-03-29 18:00"),
    ("2022-04-03 02:00", "2022-04-03 02:00"),
    ("2022-04-27 13:00", "2022-04-28 03:00"),
]


def task_input(ts, values, period_s=None, frames=None) -> TaskInput:
    frame = pd.DataFrame({"ts": ts, "value": np.asarray(values, dtype=float)})
    return TaskInput(
        "t/a/x", frames or {"points": frame}, SeriesMeta("t/a/x", period_s=period_s), ts[0], ts[-1]
    )


def precision_recall(flag_ts, truth_ts) -> tuple[float, float]:
    flagged, truth = set(pd.DatetimeIndex(flag_ts)), set(pd.DatetimeIndex(truth_ts))
    hits = len(flagged & truth)
    return hits / max(len(flagged), 1), hits / max(len(truth), 1)


def table(name, components, truth_ts, ks=(3.0, 4.0, 5.0)) -> dict[tuple[str, float], tuple[float, float]]:
    inp = TaskInput("t/a/x", {"components": components}, SeriesMeta("t/a/x"), truth_ts[0], truth_ts[-1])
    rows = {}
    for method in ("sigma", "mad"):
        for k in ks:
            rows[method, k] = precision_recall(
                detect(inp, k=k, method=method).frames["flags"]["ts"], truth_ts
            )
    print(f"\n{name}: method k precision recall")
    for (method, k), (p, r) in rows.items():
        print(f"  {method:5} {k:.0f} {p:.3f} {r:.3f}")
    return rows


def test_waterflow_labelled_segments():
    raw = pd.read_csv(WaterFlow().path)
    ts = pd.DatetimeIndex(pd.to_datetime(raw["Time"], utc=True)).as_unit("us")
    values = raw["Water flow [l/s]"].to_numpy()
    truth = np.zeros(ts.size, dtype=bool)
    for a, b in WATERFLOW_SEGMENTS:
        truth |= (ts >= pd.Timestamp(a, tz="UTC")) & (ts <= pd.Timestamp(b, tz="UTC"))
    components = decompose(task_input(ts, values, 3600.0)).frames["components"]
    rows = table("WaterFlow (47 labelled points)", components, ts[truth])
    assert rows["mad", 3.0][1] >= 0.9 and rows["mad", 3.0][0] >= 0.5
    assert rows["sigma", 3.0][0] >= 0.95 and rows["sigma", 3.0][1] >= 0.7


def test_spikes_injected_into_taylor():
    taylor = load_taylor().astype(float)
    ts = pd.date_range("2000-06-05", periods=taylor.size, freq="30min", tz="UTC").as_unit("us")
    clean_resid = decompose(task_input(ts, taylor, 1800.0)).frames["components"]["resid"]
    robust_sd = 1.4826 * float(np.median(np.abs(clean_resid - clean_resid.median())))
    rng = np.random.default_rng(3)
    at = np.sort(rng.choice(np.arange(10, taylor.size - 10), 40, replace=False))
    spiked = taylor.copy()
    spiked[at] += rng.choice([-1, 1], at.size) * rng.uniform(6, 12, at.size) * robust_sd
    components = decompose(task_input(ts, spiked, 1800.0)).frames["components"]
    rows = table("taylor + 40 spikes of 6-12 robust sd", components, ts[at])
    assert rows["mad", 5.0][1] >= 0.9 and rows["mad", 5.0][0] >= 0.8
    assert rows["sigma", 3.0][1] >= 0.9
    assert rows["mad", 3.0][1] == 1.0  # at k = 3 taylor's own heavy tails cost precision, not recall


def test_demo_spikes_are_found():
    data = generate(days=4, meters=10, seed=11)
    spikes = data.defects.to_pandas().query("kind == 'spike'")
    assert len(spikes) >= 3
    for sid, at in zip(spikes["series_id"], spikes["start_ts"], strict=True):
        column = sid.split("/")[-1].removesuffix(".P")
        wide = data.wide.drop_duplicates("UNIX_TS")
        ts = pd.DatetimeIndex(pd.to_datetime(wide["UNIX_TS"] // 60 * 60, unit="s", utc=True)).as_unit("us")
        frame = pd.DataFrame({"ts": ts, "value": wide[column].to_numpy()}).dropna().drop_duplicates("ts")
        components = decompose(task_input(pd.DatetimeIndex(frame["ts"]), frame["value"], 60.0)).frames[
            "components"
        ]
        inp = TaskInput(sid, {"components": components}, SeriesMeta(sid), ts[0], ts[-1])
        flags = detect(inp, method="mad", k=5.0).frames["flags"]
        assert pd.Timestamp(at) in set(flags["ts"]), (sid, at)


def test_ema_is_pandas_ewm_over_the_trailing_valid_values():
    rng = np.random.default_rng(0)
    values = rng.normal(10, 2, 200)
    ts = pd.date_range("2024-01-01", periods=200, freq="min", tz="UTC").as_unit("us")
    flagged = np.zeros(200, dtype=bool)
    flagged[[0, 5, 6, 7, 50, 120, 121, 199]] = True
    flags = pd.DataFrame({"ts": ts[flagged]})
    out = handle(
        task_input(ts, values, 60.0, {"points": pd.DataFrame({"ts": ts, "value": values}), "flags": flags})
    )
    got = out.frames["points"]["value"].to_numpy()
    valid = values[~flagged]
    for i in np.flatnonzero(flagged):
        before = values[:i][~flagged[:i]][-10:]
        expected = (
            valid[0] if before.size == 0 else pd.Series(before).ewm(span=10, adjust=True).mean().iloc[-1]
        )
        assert got[i] == pytest.approx(expected)
    np.testing.assert_array_equal(got[~flagged], values[~flagged])
    assert out.report["flagged"] == 8


def test_a_long_anomalous_stretch_keeps_the_level_before_it():
    values = np.r_[np.full(30, 100.0), np.full(20, 24.0), np.full(30, 100.0)]
    ts = pd.date_range("2024-01-01", periods=values.size, freq="h", tz="UTC").as_unit("us")
    flags = pd.DataFrame({"ts": ts[30:50]})
    out = handle(
        task_input(ts, values, 3600.0, {"points": pd.DataFrame({"ts": ts, "value": values}), "flags": flags})
    )
    assert (out.frames["points"]["value"] == 100.0).all()


def test_seasonal_replacement_uses_trend_plus_seasonal():
    ts = pd.date_range("2024-01-01", periods=6, freq="min", tz="UTC").as_unit("us")
    points = pd.DataFrame({"ts": ts, "value": [1.0, 2, 99, 4, 5, 6]})
    comp = pd.DataFrame({"ts": ts[[0, 1, 2, 3]], "trend": [1.0, 2, 3, 4], "seasonal": [0.0, 0, 0.5, 0]})
    flags = pd.DataFrame({"ts": ts[[2, 5]]})
    inp = task_input(ts, points["value"], 60.0, {"points": points, "flags": flags, "components": comp})
    out = handle(inp, method="seasonal")
    values = out.frames["points"]["value"].tolist()
    assert values[2] == 3.5
    assert values[5] == pytest.approx(pd.Series([1.0, 2, 4, 5]).ewm(span=10).mean().iloc[-1])  # no component
    assert out.report["seasonal_missing"] == 1


def test_without_flags_the_points_pass_through():
    ts = pd.date_range("2024-01-01", periods=6, freq="min", tz="UTC").as_unit("us")
    points = pd.DataFrame({"ts": ts, "value": [1.0, 2, 3, 4, 5, 6]})
    out = handle(task_input(ts, points["value"], 60.0, {"points": points}))
    pd.testing.assert_frame_equal(out.frames["points"], points)


def test_too_few_residuals_are_skipped():
    ts = pd.date_range("2024-01-01", periods=3, freq="min", tz="UTC").as_unit("us")
    comp = pd.DataFrame({"ts": ts, "resid": [0.0, 1.0, np.nan]})
    assert "2 finite residual" in detect(task_input(ts, [0, 0, 0], frames={"components": comp})).skipped


def test_malformed_input_raises():
    ts = pd.date_range("2024-01-01", periods=6, freq="min", tz="UTC").as_unit("us")
    comp = pd.DataFrame({"ts": ts, "trend": np.zeros(6)})
    with pytest.raises(PipelineError, match="t/a/x: components frame lacks column 'resid'"):
        detect(task_input(ts, np.zeros(6), frames={"components": comp}))
    with pytest.raises(PipelineError, match="detect method must be one of"):
        detect(task_input(ts, np.zeros(6), frames={"components": comp}), method="iqr")
    with pytest.raises(PipelineError, match="k > 0"):
        detect(task_input(ts, np.zeros(6), frames={"components": comp}), k=-1)
    points = pd.DataFrame({"ts": ts, "value": np.zeros(6)})
    with pytest.raises(PipelineError, match="integer window >= 1"):
        handle(task_input(ts, np.zeros(6), frames={"points": points}), window=0)
    with pytest.raises(PipelineError, match="flags frame lacks column 'ts'"):
        handle(task_input(ts, np.zeros(6), frames={"points": points, "flags": pd.DataFrame({"x": [1]})}))
    with pytest.raises(PipelineError, match="needs a 'points' frame"):
        handle(task_input(ts, np.zeros(6), frames={"flags": pd.DataFrame({"ts": ts})}))
