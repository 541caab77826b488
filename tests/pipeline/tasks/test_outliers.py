"""IQR outliers on real and demo data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from sparkhu.demo.generator import generate
from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import SeriesMeta, TaskInput
from sparkhu.pipeline.tasks.outliers import iqr


def task_input(values, ts=None) -> TaskInput:
    if ts is None:
        ts = pd.date_range("2024-01-01", periods=len(values), freq="min", tz="UTC").as_unit("us")
    frame = pd.DataFrame({"ts": ts, "value": np.asarray(values, dtype=float)})
    return TaskInput("t/a/x", {"points": frame}, SeriesMeta("t/a/x"), ts[0], ts[-1])


def test_fences_match_pandas_quantiles():
    co2 = sm.datasets.co2.load_pandas().data["co2"].dropna()
    spiked = co2.to_numpy().copy()
    spiked[[100, 900]] = [500.0, 200.0]
    out = iqr(task_input(spiked), k=1.5)
    q1, q3 = pd.Series(spiked).quantile([0.25, 0.75])
    assert out.report["lower"] == pytest.approx(q1 - 1.5 * (q3 - q1))
    assert out.report["upper"] == pytest.approx(q3 + 1.5 * (q3 - q1))
    assert out.frames["flags"]["value"].tolist() == [500.0, 200.0]
    assert len(out.frames["points"]) == len(spiked) - 2
    assert set(out.frames["flags"].columns) == {"ts", "value", "lower", "upper"}


def test_demo_spike_is_flagged_and_removed():
    data = generate(days=4, meters=10, seed=11)
    spike = data.defects.to_pandas().query("kind == 'spike'").iloc[0]
    column = spike["series_id"].split("/")[-1].removesuffix(".P")
    wide = data.wide.drop_duplicates("UNIX_TS")
    ts = pd.DatetimeIndex(pd.to_datetime(wide["UNIX_TS"] // 60 * 60, unit="s", utc=True)).as_unit("us")
    frame = pd.DataFrame({"ts": ts, "value": wide[column].to_numpy()}).dropna().drop_duplicates("ts")
    out = iqr(task_input(frame["value"], pd.DatetimeIndex(frame["ts"])))
    assert pd.Timestamp(spike["start_ts"]) in set(out.frames["flags"]["ts"])
    assert pd.Timestamp(spike["start_ts"]) not in set(out.frames["points"]["ts"])


@pytest.mark.parametrize(("values", "reason"), [([1.0, 2.0], "2 finite"), ([3.0] * 9, "constant")])
def test_unusable_series_are_skipped(values, reason):
    assert reason in iqr(task_input(values)).skipped


def test_malformed_input_raises():
    with pytest.raises(PipelineError, match="k >= 0"):
        iqr(task_input([1.0, 2, 3, 4, 5]), k=-1)
    inp = task_input([1.0, 2, 3, 4, 5])
    with pytest.raises(PipelineError, match="t/a/x: points frame lacks column"):
        iqr(TaskInput("t/a/x", {"points": inp.frames["points"][["value"]]}, inp.meta, inp.start, inp.end))
    with pytest.raises(PipelineError, match="needs a 'points' frame"):
        iqr(TaskInput("t/a/x", {}, inp.meta, inp.start, inp.end))
