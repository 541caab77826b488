"""Sliding windows: ring-buffer behaviour against a plain list, late points, batch splitting."""

from __future__ import annotations

import numpy as np
import pytest

from sparkhu.errors import InputError
from sparkhu.online.windows import SeriesWindow, Windows
from sparkhu.series import points


def test_ring_matches_a_plain_list_over_many_wraps():
    rng = np.random.default_rng(5)
    window = SeriesWindow(7)
    reference: list[int] = []
    t = 0
    for _ in range(300):
        k = int(rng.integers(0, 12))
        ts = np.arange(t, t + k, dtype="int64")
        t += k
        window.append(ts, ts.astype("float64") * 2)
        reference = (reference + ts.tolist())[-7:]
        assert window.ts.tolist() == reference
        assert window.values.tolist() == [2.0 * v for v in reference]
        assert window.last_ts == (reference[-1] if reference else None)


def test_views_are_read_only():
    window = SeriesWindow(3)
    window.append(np.array([1, 2], dtype="int64"), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="read-only"):
        window.values[0] = 5.0


def test_extend_splits_by_series_and_drops_late_and_duplicate_points():
    w = Windows(capacity=4)
    first = w.extend(points(["a/a/a", "b/b/b", "a/a/a"], [20, 5, 10], [2.0, 5.0, 1.0]))
    assert {k: v[1].tolist() for k, v in first.items()} == {"a/a/a": [1.0, 2.0], "b/b/b": [5.0]}
    # 20 is a re-delivery, 15 is late, 30 arrives twice in the batch: the last copy wins
    second = w.extend(points(["a/a/a"] * 4, [20, 15, 30, 30], [9.0, 9.0, 3.0, 4.0]))
    assert second["a/a/a"][0].tolist() == [30] and second["a/a/a"][1].tolist() == [4.0]
    assert w.late_points == 3
    assert w["a/a/a"].values.tolist() == [1.0, 2.0, 4.0]
    assert sorted(w) == ["a/a/a", "b/b/b"] and len(w) == 2 and "b/b/b" in w
    assert w.extend(points("a/a/a", [], [])) == {}


def test_capacity_must_be_positive():
    with pytest.raises(InputError, match="window capacity must be a positive integer"):
        Windows(0)


def test_extend_orders_a_time_major_batch_and_keeps_the_last_duplicate_per_series():
    w = Windows(capacity=10)
    # interleaved series, a duplicate (b at 20) and a series whose rows arrive out of order
    added = w.extend(
        points(
            ["b/b/b", "a/a/a", "b/b/b", "a/a/a", "b/b/b", "c/c/c", "c/c/c"],
            [10, 10, 20, 20, 20, 50, 40],
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        )
    )
    assert list(added) == ["a/a/a", "b/b/b", "c/c/c"]
    assert {k: (ts.tolist(), v.tolist()) for k, (ts, v) in added.items()} == {
        "a/a/a": ([10, 20], [2.0, 4.0]),
        "b/b/b": ([10, 20], [1.0, 5.0]),
        "c/c/c": ([40, 50], [7.0, 6.0]),
    }
    assert w.late_points == 1
