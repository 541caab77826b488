"""Sliding windows: chronological, gap-free, stride-anchored, Arrow list columns."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import SeriesMeta, TaskInput
from sparkhu.pipeline.tasks.windows import sliding


def task_input(values, period_s=60.0, drop=(), start="2024-01-01") -> TaskInput:
    ts = pd.date_range(start, periods=len(values), freq="min", tz="UTC").as_unit("us")
    frame = pd.DataFrame({"ts": ts, "value": np.asarray(values, dtype=float)}).drop(index=list(drop))
    meta = SeriesMeta("t/a/x", period_s=period_s)
    return TaskInput("t/a/x", {"points": frame.reset_index(drop=True)}, meta, ts[0], ts[-1])


def test_windows_are_chronological_and_exact():
    values = np.arange(100.0)
    w = sliding(task_input(values), inputs=6, outputs=2).frames["windows"]
    assert len(w) == 100 - 8 + 1
    assert w["ts"].is_monotonic_increasing
    x, y = np.stack(w["x"].to_numpy()), np.stack(w["y"].to_numpy())
    np.testing.assert_array_equal(x[:, -1] + 1, y[:, 0])
    assert (w["ts"] - w["ts"].iloc[0]).dt.total_seconds().div(60).add(5).tolist() == x[:, -1].tolist()
    table = pa.Table.from_pandas(w, preserve_index=False)
    assert table.schema.field("x").type == pa.list_(pa.float64())


def test_windows_touching_a_gap_or_nan_are_dropped():
    values = np.arange(60.0)
    values[40] = np.nan
    out = sliding(task_input(values, drop=[20]), inputs=4, outputs=1)
    w = out.frames["windows"]
    bad = {20, 40}
    starts = (w["ts"] - pd.Timestamp("2024-01-01", tz="UTC")).dt.total_seconds().div(60).astype(int) - 3
    assert all(not bad & set(range(s, s + 5)) for s in starts)
    assert len(w) == 56 - 10 and out.report["dropped_with_gaps"] == 10


def test_stride_is_anchored_on_the_epoch_not_the_lookback():
    values = np.arange(200.0)
    full = sliding(task_input(values), inputs=5, outputs=2, stride=7).frames["windows"]
    later = sliding(task_input(values[3:], start="2024-01-01 00:03"), inputs=5, outputs=2, stride=7)
    shared = full[full["ts"] >= later.frames["windows"]["ts"].iloc[0]]
    assert shared["ts"].tolist() == later.frames["windows"]["ts"].tolist()
    assert ((full["ts"].astype("int64") // 60_000_000) % 7 == 0).all()


def test_unknown_period_and_short_series_are_skipped():
    assert "period unknown" in sliding(task_input(np.arange(100.0), period_s=None)).skipped
    assert "shorter than one window" in sliding(task_input(np.arange(50.0))).skipped


def test_malformed_input_raises():
    with pytest.raises(PipelineError, match="t/a/x: sliding needs a positive integer inputs"):
        sliding(task_input(np.arange(100.0)), inputs=0)
    with pytest.raises(PipelineError, match="positive integer stride"):
        sliding(task_input(np.arange(100.0)), stride=1.5)


def test_a_week_of_minutes_in_milliseconds():
    inp = task_input(np.random.default_rng(0).normal(size=10_080))
    best = min(_timed(sliding, inp) for _ in range(5))
    print(f"sliding 10,080 points (60+20): {best * 1e3:.2f} ms")
    assert best < 0.05


def _timed(fn, *args):
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0
