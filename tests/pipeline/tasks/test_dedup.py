"""deduplicate: the demo's recorded duplicate lines, keep-last semantics, order, bad input, speed."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from sparkhu.demo.generator import generate
from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import SeriesMeta, TaskInput
from sparkhu.pipeline.tasks.dedup import deduplicate
from sparkhu.pipeline.tasks.validation import validate

T0 = pd.Timestamp("2024-03-01", tz="UTC")
SID = "a/b/c"


def run(frame, sid=SID):
    return deduplicate(TaskInput(sid, {"points": frame}, SeriesMeta(sid), T0, T0 + pd.Timedelta(days=1)))


def frame(offsets_s, values):
    return pd.DataFrame({"ts": (T0 + pd.to_timedelta(offsets_s, unit="s")).as_unit("us"), "value": values})


def test_demo_recorded_duplicates_are_all_removed():
    demo = generate(days=7, meters=10, seed=11)
    table = demo.points.to_pandas()
    defects = demo.defects.to_pandas()
    found = expected = 0
    for sid, raw in table.groupby("series_id", observed=True):
        raw = raw[["ts", "value"]].reset_index(drop=True)
        valid = validate(TaskInput(sid, {"points": raw}, SeriesMeta(sid), T0, T0)).frames["points"]
        out = run(valid, sid)
        dup_ts = defects[(defects.series_id == sid) & (defects.kind == "duplicate")]["start_ts"]
        present = dup_ts[dup_ts.isin(raw.ts)]  # a duplicated line inside a gap has no point here
        expected += len(present)
        found += out.report["removed"]
        assert out.report["removed"] == out.report["duplicate_ts"] == len(present)
        assert out.report["conflicting"] == 0  # the lines were written twice identically
        assert out.frames["points"]["ts"].is_unique
        assert len(out.frames["points"]) == raw.ts.nunique()
    print(f"\ndedup on the demo: {found} of {expected} recorded duplicate points removed")
    assert found == expected > 0


def test_the_last_delivered_value_wins_and_order_is_stable():
    out = run(frame([60, 0, 60, 0, 60], [1.0, 2.0, 3.0, 4.0, 5.0]))
    assert out.frames["points"]["value"].tolist() == [4.0, 5.0]
    assert out.report == {"rows_in": 5, "removed": 3, "duplicate_ts": 2, "conflicting": 3}


def test_unique_input_is_unchanged_and_idempotent():
    once = run(frame([0, 60, 120], [1.0, np.nan, 3.0]))
    assert once.report["removed"] == 0
    twice = run(once.frames["points"])
    pd.testing.assert_frame_equal(once.frames["points"], twice.frames["points"])
    assert str(twice.frames["points"]["ts"].dtype) == "datetime64[us, UTC]"


def test_empty_frame():
    out = run(frame([], []))
    assert out.frames["points"].empty and out.report["removed"] == 0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (pd.DataFrame({"ts": [T0]}), r"a/b/c: dedup: frame lacks column\(s\) value"),
        (pd.DataFrame({"ts": ["2024-03-01"], "value": [1.0]}), "ts has dtype .*; expected datetime64"),
        (frame([0], ["x"]), "value has dtype .*; expected float64"),
    ],
)
def test_malformed_frames_raise(raw, message):
    with pytest.raises(PipelineError, match=message):
        run(raw)


def test_speed_on_a_week_of_minutes():
    rng = np.random.default_rng(0)
    offsets = np.sort(rng.integers(0, 10_080, 10_080)) * 60
    raw = frame(offsets, rng.normal(size=offsets.size))
    best = min(_timed(lambda: run(raw)) for _ in range(5))
    print(f"\ndedup: {best * 1000:.2f} ms for 10,080 points")
    assert best < 0.05


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t
