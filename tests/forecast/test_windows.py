"""Window building: chronological order, the time split, scaling on the training part only."""

from __future__ import annotations

import numpy as np
import pytest

from sparkhu.errors import ForecastError
from sparkhu.forecast.windows import MinMaxScaler, sliding_windows, split_point, training_windows


def test_windows_are_chronological():
    # The original built windows newest first; window i must read y[i:i+T] and target y[i+T:i+T+N].
    y = np.arange(100.0)
    x, t = sliding_windows(y, input_size=10, horizon=3)
    assert x.shape == (88, 10) and t.shape == (88, 3)
    np.testing.assert_array_equal(x[:, 0], np.arange(88.0))  # oldest window first, one step apart
    np.testing.assert_array_equal(t[:, 0], x[:, -1] + 1)  # targets follow their inputs directly
    np.testing.assert_array_equal(t[-1], [97.0, 98.0, 99.0])


def test_stride_and_too_short():
    x, t = sliding_windows(np.arange(10.0), input_size=3, horizon=2, stride=2)
    assert x[:, 0].tolist() == [0.0, 2.0, 4.0]
    x, t = sliding_windows(np.arange(4.0), input_size=3, horizon=2)
    assert x.shape == (0, 3) and t.shape == (0, 2)


def test_training_windows_split_in_time_and_scale_on_train_part():
    y = np.arange(200.0)
    ws = training_windows([y], input_size=10, horizon=5, val_fraction=0.2, scaler="minmax", what="s")
    scaler = ws.scalers[0]
    assert (scaler.low, scaler.high) == (0.0, 159.0)  # fitted on the first 160 values only
    train_targets = scaler.inverse(ws.y_train)
    val_targets = scaler.inverse(ws.y_val)
    assert train_targets.max() == pytest.approx(159.0)
    assert val_targets.min() == pytest.approx(160.0)  # every validation target after the split
    assert len(ws.x_val) == 40 - 5 + 1
    assert ws.x_train.dtype == np.float32 and ws.x_train.flags.c_contiguous


def test_pooled_windows_keep_one_scaler_per_series():
    a, b = np.sin(np.arange(100.0)), 1000 + 50 * np.cos(np.arange(80.0))
    ws = training_windows([a, b], input_size=8, horizon=4, val_fraction=0.25, scaler="minmax", what="g")
    assert len(ws.scalers) == 2 and ws.scalers[1].low > 900
    assert len(ws.x_train) == (75 - 12 + 1) + (60 - 12 + 1)
    assert 0.0 <= ws.x_train.min() and ws.x_train.max() <= 1.0


def test_split_point_and_identity_scaler():
    assert split_point(10, 0.25) == 8
    s = MinMaxScaler.fit(np.array([3.0, 3.0]), "none", "x")
    assert s.transform(np.array([3.0])).tolist() == [3.0]


@pytest.mark.parametrize(
    ("y", "kwargs", "match"),
    [
        (np.arange(45.0), {}, "45 values are too few .* need about 50"),
        (np.r_[np.arange(100.0), np.nan], {}, "1 NaN/infinite values .* index 100"),
        (np.full(200, 5.0), {}, "constant"),
        (np.arange(200.0), {"scaler": "zscore"}, "unknown scaler 'zscore'"),
        (np.arange(200.0), {"val_fraction": 1.0}, r"val_fraction must be in \[0, 1\)"),
    ],
)
def test_bad_input(y, kwargs, match):
    args = {"input_size": 30, "horizon": 10, "val_fraction": 0.2, "scaler": "minmax"} | kwargs
    with pytest.raises(ForecastError, match=match):
        training_windows([y], what="meter/WHE", **args)


def test_bad_window_sizes_and_no_series():
    with pytest.raises(ForecastError, match="must be >= 1"):
        sliding_windows(np.arange(5.0), input_size=0, horizon=1)
    with pytest.raises(ForecastError, match="1-D"):
        sliding_windows(np.ones((3, 3)), input_size=1, horizon=1)
    with pytest.raises(ForecastError, match="no series given"):
        training_windows([], 3, 1, 0.2, "minmax", "g")
