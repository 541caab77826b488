"""validate: real data with NaN (co2), demo feed defects, reasons per rule, malformed frames, speed."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import statsmodels.datasets.co2 as co2_data

from sparkhu.demo.generator import generate
from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import SeriesMeta, TaskInput
from sparkhu.pipeline.tasks.validation import REASONS, validate

T0 = pd.Timestamp("2024-03-01", tz="UTC")
SID = "a/b/c"


def run(frame, meta=None, start=T0, end=None, **params):
    meta = meta or SeriesMeta(SID)
    end = end if end is not None else T0 + pd.Timedelta(days=1)
    return validate(TaskInput(SID, {"points": frame}, meta, start, end), **params)


def frame(offsets_s, values):
    return pd.DataFrame({"ts": (T0 + pd.to_timedelta(offsets_s, unit="s")).as_unit("us"), "value": values})


def test_co2_missing_weeks_are_rejected_with_their_reason():
    data = co2_data.load_pandas().data
    raw = pd.DataFrame({"ts": data.index.tz_localize("UTC"), "value": data["co2"].to_numpy()})
    out = run(raw, start=raw.ts.min(), end=raw.ts.max() + pd.Timedelta(days=7))
    rejects = out.frames["rejects"]
    assert out.report["by_reason"] == {"value_nan": 59}
    assert len(rejects) == 59 and set(rejects["field"]) == {"value"}
    assert rejects["ts"].tolist() == raw.ts[raw.value.isna()].tolist()
    points = out.frames["points"]
    assert len(points) == len(raw) - 59 and not points["value"].isna().any()
    assert str(points["ts"].dtype) == "datetime64[us, UTC]" and points["value"].dtype == np.float64


def test_demo_feed_shuffled_comes_out_sorted_with_duplicates_flagged():
    demo = generate(days=3, meters=10, seed=3)
    table = demo.points.to_pandas()
    sid = "ampds2/electricity/WHE.P"
    raw = table[table.series_id == sid][["ts", "value"]].sample(frac=1.0, random_state=1)
    out = run(raw.reset_index(drop=True), start=raw.ts.min(), end=raw.ts.max() + pd.Timedelta(minutes=1))
    points = out.frames["points"]
    defects = demo.defects.to_pandas()
    dups = defects[(defects.series_id == sid) & (defects.kind == "duplicate")]
    assert out.report["duplicate_ts"] == len(dups) > 0
    assert out.report["out_of_order"] > 0 and out.report["rejected"] == 0
    assert len(points) == len(raw) and points["ts"].is_monotonic_increasing


def test_range_from_metadata_rejects_spikes_and_negatives():
    values = np.array([5.0, -1.0, 7.0, 5e4, 10.0, 100.0])
    out = run(frame(np.arange(6) * 60, values), SeriesMeta(SID, value_min=0.0, value_max=100.0))
    assert out.frames["points"]["value"].tolist() == [5.0, 7.0, 10.0, 100.0]  # bounds are inclusive
    assert out.frames["rejects"]["reason"].tolist() == ["below value_min=0.0", "above value_max=100.0"]
    assert out.report["by_reason"] == {"value_below_min": 1, "value_above_max": 1}
    unchecked = run(frame(np.arange(6) * 60, values), SeriesMeta(SID, value_max=100.0), check_range=False)
    assert unchecked.report["rejected"] == 0


def test_every_reason_once_and_the_first_failing_rule_wins():
    raw = pd.DataFrame(
        {
            "ts": ["2024-03-01T00:00:00Z", "not a time", "2024-03-01T00:02:00Z", "2024-03-01T00:03:00Z",
                   "2024-03-01T00:04:00Z", "2024-03-01T00:05:00Z", "2024-03-01T00:06:00Z",
                   "2024-03-01T00:07:00Z", "2024-03-01T00:08:00Z"],
            "value": ["1.5", "2", "abc", None, "inf", "-5", "500", "3", "4"],
            "unit": ["W", "W", "W", "W", "W", "W", "W", "kW", None],
        }
    )  # fmt: skip
    out = run(raw, SeriesMeta(SID, unit="W", value_min=0.0, value_max=100.0))
    rejects = out.frames["rejects"]
    assert out.report["by_reason"] == dict.fromkeys(REASONS, 1)
    assert rejects["field"].tolist() == ["ts", "value", "value", "value", "value", "value", "unit"]
    assert rejects["ts"].iloc[0] == T0  # no timestamp: quarantined at the interval's start
    assert rejects["reason"].tolist()[-1] == "unit differs: expected W"
    assert out.frames["points"]["value"].tolist() == [1.5, 4.0]


def test_naive_timestamps_are_utc_and_empty_frames_pass():
    raw = pd.DataFrame({"ts": pd.to_datetime(["2024-03-01 00:01"]), "value": [1]})
    out = run(raw)
    assert out.frames["points"]["ts"].tolist() == [T0 + pd.Timedelta(minutes=1)]
    empty = run(frame([], []))
    assert empty.frames["points"].empty and empty.frames["rejects"].empty and empty.skipped is None


@pytest.mark.parametrize(
    ("raw", "meta", "message"),
    [
        (pd.DataFrame({"ts": [T0]}), None, r"a/b/c: validate: frame lacks column\(s\) value"),
        (pd.DataFrame({"ts": [1, 2], "value": [1.0, 2.0]}), None, "ts has dtype int64; expected timestamps"),
        (frame([0], [True]), None, "value has dtype bool; expected numbers"),
        (frame([0], [1.0]), SeriesMeta(SID, value_min=5.0, value_max=1.0), "value_min=5.0 > value_max=1.0"),
    ],
)
def test_malformed_frames_and_metadata_raise(raw, meta, message):
    with pytest.raises(PipelineError, match=message):
        run(raw, meta)


def test_missing_input_frame_raises():
    with pytest.raises(PipelineError, match="input frame 'points' is missing"):
        validate(TaskInput(SID, {}, SeriesMeta(SID), T0, T0))


def test_speed_on_a_week_of_minutes():
    rng = np.random.default_rng(0)
    raw = frame(np.arange(10_080) * 60.0, rng.normal(100, 10, 10_080))
    best = min(_timed(lambda: run(raw, SeriesMeta(SID, value_min=0.0, value_max=1e4))) for _ in range(5))
    print(f"\nvalidate: {best * 1000:.2f} ms for 10,080 points")
    assert best < 0.05


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t
