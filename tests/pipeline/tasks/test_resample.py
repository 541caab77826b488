"""dedup_and_resample: duplicates, jitter, NaN, alignment, idempotence, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sparkhu.errors import PipelineError
from sparkhu.pipeline.tasks.resample import dedup_and_resample

T0 = pd.Timestamp("2024-03-01 00:00:00", tz="UTC")


def frame(offsets_s, values):
    return pd.DataFrame({"ts": T0 + pd.to_timedelta(offsets_s, unit="s"), "value": values})


def test_duplicates_keep_the_last_value():
    out = dedup_and_resample(frame([0, 0, 0, 60], [1.0, 2.0, 3.0, 4.0]), "a/b/c", period_s=60)
    assert out["value"].tolist() == [3.0, 4.0]


def test_jitter_snaps_to_nearest_grid_point_and_means_per_slot():
    out = dedup_and_resample(frame([0.4, 59.2, 61.0, 119.9, 178.0], [1.0, 2.0, 4.0, 6.0, 7.0]), "a/b/c", 60)
    assert out["ts"].tolist() == [
        T0,
        T0 + pd.Timedelta(minutes=1),
        T0 + pd.Timedelta(minutes=2),
        T0 + pd.Timedelta(minutes=3),
    ]
    assert out["value"].tolist() == [1.0, 3.0, 6.0, 7.0]


def test_floor_alignment_uses_left_closed_buckets():
    out = dedup_and_resample(frame([0.4, 59.2, 61.0], [1.0, 2.0, 4.0]), "a/b/c", 60, how="floor")
    assert out["value"].tolist() == [1.5, 4.0]


def test_missing_slots_and_nan_values_stay_absent():
    out = dedup_and_resample(frame([0, 60, 300], [1.0, np.nan, 5.0]), "a/b/c", 60)
    assert out["ts"].tolist() == [T0, T0 + pd.Timedelta(minutes=5)]


def test_output_types_and_idempotence():
    rng = np.random.default_rng(0)
    offsets = np.sort(rng.uniform(0, 3600, 500))
    once = dedup_and_resample(frame(offsets, rng.normal(size=500)), "a/b/c", 60)
    assert str(once["ts"].dtype) == "datetime64[us, UTC]" and once["value"].dtype == np.float64
    assert once["ts"].is_monotonic_increasing and once["ts"].is_unique
    twice = dedup_and_resample(once, "a/b/c", 60)
    pd.testing.assert_frame_equal(once, twice)


def test_empty_frame_gives_empty_frame():
    out = dedup_and_resample(frame([], []), "a/b/c", 60)
    assert out.empty and list(out.columns) == ["ts", "value"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"period_s": 0}, "a/b/c: period_s must be a positive number"),
        ({"period_s": "60"}, "period_s must be a positive number"),
        ({"period_s": 1e-9}, "below one microsecond"),
        ({"period_s": 60, "how": "ceil"}, "how must be one of nearest, floor"),
    ],
)
def test_bad_parameters_rejected(kwargs, message):
    with pytest.raises(PipelineError, match=message):
        dedup_and_resample(frame([0], [1.0]), "a/b/c", **kwargs)


def test_malformed_frames_rejected():
    with pytest.raises(PipelineError, match=r"a/b/c: frame lacks column.*value"):
        dedup_and_resample(pd.DataFrame({"ts": [T0]}), "a/b/c", 60)
    with pytest.raises(PipelineError, match="a/b/c: ts must be timestamps and value numbers"):
        dedup_and_resample(pd.DataFrame({"ts": [T0], "value": ["many"]}), "a/b/c", 60)
