"""Normalisation and its inverse."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from sparkhu.errors import PipelineError
from sparkhu.pipeline.base import SeriesMeta, TaskInput
from sparkhu.pipeline.tasks.normalize import inverse, normalize


def task_input(values) -> TaskInput:
    ts = pd.date_range("2024-01-01", periods=len(values), freq="min", tz="UTC").as_unit("us")
    frame = pd.DataFrame({"ts": ts, "value": np.asarray(values, dtype=float)})
    return TaskInput("t/a/x", {"points": frame}, SeriesMeta("t/a/x"), ts[0], ts[-1])


@pytest.mark.parametrize("method", ["minmax", "zscore"])
def test_round_trip_on_co2(method):
    co2 = sm.datasets.co2.load_pandas().data["co2"].to_numpy()  # NaN weeks stay NaN
    out = normalize(task_input(co2), method=method)
    scaled = out.frames["points"]["value"].to_numpy()
    params = out.metadata["normalization"]
    assert params["method"] == method
    if method == "minmax":
        assert np.nanmin(scaled) == 0.0 and np.nanmax(scaled) == 1.0
    else:
        assert np.nanmean(scaled) == pytest.approx(0.0, abs=1e-12)
        assert np.nanstd(scaled) == pytest.approx(1.0)
    np.testing.assert_allclose(inverse(scaled, params), co2, rtol=1e-12)
    assert np.isnan(scaled).sum() == np.isnan(co2).sum()


def test_constant_and_short_series_are_skipped():
    assert "constant" in normalize(task_input([4.0] * 10)).skipped
    assert "3 finite" in normalize(task_input([1.0, 2.0, 3.0])).skipped


def test_malformed_input_raises():
    with pytest.raises(PipelineError, match="t/a/x: normalize method must be one of minmax, zscore"):
        normalize(task_input(np.arange(10.0)), method="robust")
    with pytest.raises(PipelineError, match="lack a method"):
        inverse([0.5], {"min": 0.0, "max": 1.0})
    with pytest.raises(PipelineError, match="'std' must be a finite number"):
        inverse([0.5], {"method": "zscore", "mean": 0.0})
