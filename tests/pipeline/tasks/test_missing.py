"""detect: the demo's recorded gaps, co2's NaN weeks, WaterFlow's lost hours, the rule's edges, bad input."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import statsmodels.datasets.co2 as co2_data
from river.datasets import WaterFlow

from sparkhu.demo.generator import generate
from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import SeriesMeta, TaskInput
from sparkhu.pipeline.tasks import imputation, missing
from sparkhu.pipeline.tasks.dedup import deduplicate
from sparkhu.pipeline.tasks.missing import detect
from sparkhu.pipeline.tasks.regularity import analyse
from sparkhu.pipeline.tasks.validation import validate

SID = "a/b/c"
T0 = pd.Timestamp("2024-03-01", tz="UTC")


def run(ts, period_s=60.0, regular=True, start=T0, end=None, **params):
    ts = pd.DatetimeIndex(ts).as_unit("us")
    frame = pd.DataFrame({"ts": ts, "value": np.arange(ts.size, dtype=np.float64)})
    end = end if end is not None else start + pd.Timedelta(days=1)
    meta = SeriesMeta(SID, period_s=period_s, regular=regular)
    return detect(TaskInput(SID, {"points": frame}, meta, start, end), **params)


def at(seconds):
    return T0 + pd.to_timedelta(np.asarray(seconds, dtype=np.float64), unit="s")


def seconds_of(out):
    return ((out.frames["slots"]["ts"] - T0).dt.total_seconds()).tolist()


def test_demo_recorded_gaps_are_found():
    demo = generate(days=14, meters=10, seed=21)
    table = demo.points.to_pandas()
    defects = demo.defects.to_pandas()
    start = table.ts.min()
    end = table.ts.max().ceil("min") + pd.Timedelta(minutes=1)
    found = expected = false_slots = 0
    print("\nseries                      recorded  found  extra")
    for sid, raw in table.groupby("series_id", observed=True):
        frames = {"points": raw[["ts", "value"]].reset_index(drop=True)}
        meta = SeriesMeta(sid)
        for fn in (validate, deduplicate):
            frames = {"points": fn(TaskInput(sid, frames, meta, start, end)).frames["points"]}
        decision = analyse(TaskInput(sid, frames, meta, start, end)).metadata
        assert decision == {"period_s": 60.0, "regular": True, "periodic_error": decision["periodic_error"]}
        meta = SeriesMeta(sid, period_s=decision["period_s"], regular=decision["regular"])
        slots = detect(TaskInput(sid, frames, meta, start, end)).frames["slots"]["ts"]
        gaps = defects[(defects.series_id == sid) & (defects.kind == "gap")]
        runs = [
            pd.date_range(a, b, freq="min", unit="us")
            for a, b in zip(gaps.start_ts, gaps.end_ts, strict=True)
        ]
        truth = pd.DatetimeIndex(np.concatenate(runs) if runs else [], tz="UTC").as_unit("us")
        hit = _within(truth, slots, pd.Timedelta(seconds=30))
        extra = slots.size - _within(pd.DatetimeIndex(slots), pd.Series(truth), pd.Timedelta(seconds=30))
        found, expected, false_slots = found + hit, expected + truth.size, false_slots + extra
        if truth.size or extra:
            print(f"{sid:27s} {truth.size:8d} {hit:6d} {extra:6d}")
    recall = found / expected
    print(f"recall {recall:.3f} ({found}/{expected} missing minutes), {false_slots} extra slots")
    assert expected > 100 and recall >= 0.95 and false_slots == 0


def _within(truth, found, tolerance):
    """How many ``truth`` instants have a ``found`` instant within ``tolerance``."""
    if len(truth) == 0 or len(found) == 0:
        return 0
    found = np.sort(np.asarray(pd.DatetimeIndex(found).as_unit("us").asi8))
    t = np.asarray(pd.DatetimeIndex(truth).as_unit("us").asi8)
    j = np.clip(np.searchsorted(found, t), 1, found.size - 1)
    near = np.minimum(np.abs(found[j - 1] - t), np.abs(found[j] - t))
    return int(np.count_nonzero(near <= tolerance.value // 1000))


def test_co2_nan_weeks_are_exactly_the_slots():
    data = co2_data.load_pandas().data
    weeks = data.index.tz_localize("UTC")
    kept = weeks[data["co2"].notna()]
    out = run(kept, period_s=604800.0, start=weeks[0], end=weeks[-1] + pd.Timedelta(weeks=1))
    assert out.frames["slots"]["ts"].tolist() == list(weeks[data["co2"].isna()].as_unit("us"))
    assert out.report["slots"] == 59


def test_waterflow_lost_hours_are_exactly_the_slots():
    ts = pd.DatetimeIndex(pd.to_datetime(pd.read_csv(WaterFlow().path)["Time"], utc=True))
    hours = pd.date_range(ts.min(), ts.max(), freq="h", unit="us")
    out = run(ts, period_s=3600.0, start=ts.min(), end=ts.max() + pd.Timedelta(hours=1))
    assert out.frames["slots"]["ts"].tolist() == list(hours.difference(ts.as_unit("us")))
    print(f"\nWaterFlow: {out.report}")
    assert out.report["slots"] == 111 and out.report["gaps"] == 10 and out.report["longest_gap"] == 31


@pytest.mark.parametrize(
    ("gap_s", "missing_points"),
    [(101, 0), (102, 1), (120, 1), (137, 1), (139, 2), (180, 2), (197, 2), (199, 3), (600, 9)],
)
def test_divide_and_round_rule(gap_s, missing_points):
    # ratio = gap/60: 1.68 → none; 1.7 → n = 2 sub-intervals, 1 point; 2.28 → 1; 2.32 → 2; 3.28 → 2; 3.32 → 3
    out = run(at([0, 60, 60 + gap_s, 120 + gap_s]), start=T0, end=at([180 + gap_s])[0])
    assert seconds_of(out) == pytest.approx([60 + gap_s * i / (missing_points + 1)
                                            for i in range(1, missing_points + 1)], abs=1e-6)  # fmt: skip


def test_slots_are_spread_evenly_between_jittered_neighbours():
    out = run(at([0, 63, 297, 360]), end=at([420])[0])  # 63 → 297: ratio 3.9, n = 4, points every 58.5 s
    assert seconds_of(out) == [121.5, 180.0, 238.5]
    assert out.frames["slots"]["gap_slots"].tolist() == [3, 3, 3]


def test_edges_of_the_interval():
    # the interval is [0, 600 s); points at 180..360 s: slots 0, 60, 120 before and 420..540 after
    out = run(at([180, 240, 300, 360]), end=at([600])[0])
    assert seconds_of(out) == [0, 60, 120, 420, 480, 540]
    assert (out.report["before_first"], out.report["after_last"]) == (3, 3)
    jittered = run(at([178, 240, 300, 363]), end=at([600])[0])  # the edge points' jitter adds no slot
    assert seconds_of(jittered) == [0, 58, 118, 423, 483, 543]
    early = run(at([17, 60, 120, 180, 240]), end=at([600])[0])  # a point 0.28 periods in: no slot before
    assert out.report["slots"] == 6 and early.report["before_first"] == 0


def test_lookback_point_makes_the_first_gap_inner_and_outside_slots_are_dropped():
    out = run(at([-60, 120, 180, 240]), start=T0, end=at([300])[0])
    assert seconds_of(out) == [0, 60]
    assert out.report["before_first"] == 0 and out.report["gaps"] == 1


def test_skips():
    assert run(at([0, 60]), period_s=None).skipped == "sampling period unknown: run the regularity task first"
    assert "irregular" in run(at([0, 60]), regular=False).skipped
    assert run(at([-600, -60]), start=T0).skipped == "no points in the interval (all missing)"
    unknown = run(at(np.arange(5) * 60), regular=None)  # a declared period without a decision is used
    assert unknown.skipped is None and unknown.report["after_last"] > 0


def test_missing_module_still_names_the_imputation():
    assert missing.impute is imputation.impute


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 1.0}, "a/b/c: missing: need threshold > 1"),
        ({"offset": 1.0}, "0 <= offset < 1"),
        ({"period_s": -5.0}, r"period_s=-5.0 in the metadata; expected > 0"),
    ],
)
def test_bad_parameters_raise(kwargs, message):
    with pytest.raises(PipelineError, match=message):
        run(at([0, 60, 120]), **kwargs)


def test_malformed_frame_raises():
    meta = SeriesMeta(SID, period_s=60.0, regular=True)
    with pytest.raises(PipelineError, match="input frame 'points' is missing"):
        detect(TaskInput(SID, {"inliers": pd.DataFrame()}, meta, T0, T0))
    with pytest.raises(PipelineError, match=r"missing: frame lacks column\(s\) value"):
        detect(TaskInput(SID, {"points": pd.DataFrame({"ts": at([0])})}, meta, T0, T0))


def test_speed_on_a_week_of_minutes():
    rng = np.random.default_rng(0)
    seconds = (np.arange(10_080) * 60.0)[rng.random(10_080) > 0.05]
    ts = at(seconds)
    best = min(_timed(lambda: run(ts, end=T0 + pd.Timedelta(days=7))) for _ in range(5))
    print(f"\nmissing.detect: {best * 1000:.2f} ms for 10,080 slots")
    assert best < 0.05


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t
