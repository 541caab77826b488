"""Sliding windows of the latest points per series, fed a whole Arrow batch at a time.

Each series keeps its last ``capacity`` points in a numpy buffer of twice that size: new
points are copied in as one slice, and when the buffer end is reached the live window is
moved to the front once (amortised O(1) per point, and the window is always one contiguous
view, ready for a model). A batch is cut by series with :func:`~sparkhu.series.series_runs`
(which sorts only what is out of order); points not newer than a series' last timestamp
(re-deliveries, late arrivals) are dropped and counted, duplicates inside a batch keep the
last one. No Python loop runs per point, only per series.

>>> from sparkhu.series import points
>>> w = Windows(capacity=3)
>>> new = w.extend(points(["s/a/x"] * 4 + ["s/b/y"], [1, 2, 3, 4, 1], [1.0, 2.0, 3.0, 4.0, 9.0]))
>>> sorted(new), w["s/a/x"].values.tolist(), w["s/a/x"].last_ts
(['s/a/x', 's/b/y'], [2.0, 3.0, 4.0], 4)
>>> w.extend(points("s/a/x", [4, 5], [0.0, 5.0]))["s/a/x"][1].tolist(), w.late_points
([5.0], 1)
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from sparkhu.errors import InputError
from sparkhu.series import series_runs

NewPoints = dict[str, tuple[np.ndarray, np.ndarray]]
"""series id → (timestamps in µs, values) that a batch added."""


class SeriesWindow:
    """The last ``capacity`` points of one series (timestamps in µs since the epoch, UTC)."""

    __slots__ = ("_hi", "_lo", "_ts", "_values", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ts = np.empty(2 * capacity, dtype="int64")
        self._values = np.empty(2 * capacity, dtype="float64")
        self._lo = 0
        self._hi = 0

    def __len__(self) -> int:
        return self._hi - self._lo

    @property
    def ts(self) -> np.ndarray:
        """Timestamps (µs), oldest first; a read-only view."""
        view = self._ts[self._lo : self._hi]
        view.flags.writeable = False
        return view

    @property
    def values(self) -> np.ndarray:
        """Values, oldest first; a read-only view."""
        view = self._values[self._lo : self._hi]
        view.flags.writeable = False
        return view

    @property
    def last_ts(self) -> int | None:
        """Timestamp (µs) of the newest point, None when empty."""
        return int(self._ts[self._hi - 1]) if self._hi > self._lo else None

    def append(self, ts: np.ndarray, values: np.ndarray) -> None:
        """Append points already sorted and newer than :attr:`last_ts`."""
        k = ts.size
        if k == 0:
            return
        cap = self.capacity
        if k >= cap:
            ts, values, k = ts[-cap:], values[-cap:], cap
            self._lo = self._hi = 0
        elif self._hi + k > 2 * cap:
            keep = min(self._hi - self._lo, cap - k)
            self._ts[:keep] = self._ts[self._hi - keep : self._hi]
            self._values[:keep] = self._values[self._hi - keep : self._hi]
            self._lo, self._hi = 0, keep
        self._ts[self._hi : self._hi + k] = ts
        self._values[self._hi : self._hi + k] = values
        self._hi += k
        self._lo = max(self._lo, self._hi - cap)


class Windows:
    """Sliding windows for many series; :meth:`extend` takes a whole points table."""

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise InputError(f"window capacity must be a positive integer, got {capacity!r}")
        self.capacity = capacity
        self.late_points = 0
        """Points dropped because they were not newer than their series' last point."""
        self._windows: dict[str, SeriesWindow] = {}

    def __getitem__(self, series_id: str) -> SeriesWindow:
        return self._windows[series_id]

    def __contains__(self, series_id: object) -> bool:
        return series_id in self._windows

    def __len__(self) -> int:
        return len(self._windows)

    def __iter__(self) -> Iterator[str]:
        return iter(self._windows)

    def load(self, series_id: str, ts: np.ndarray, values: np.ndarray) -> None:
        """Replace a series' window by these points (sorted, as a checkpoint saved them)."""
        window = self._windows[series_id] = SeriesWindow(self.capacity)
        window.append(np.asarray(ts, dtype="int64"), np.asarray(values, dtype="float64"))

    def extend(self, table: pa.Table) -> NewPoints:
        """Append a table of points (``series_id``, ``ts``, ``value``); return what each series gained."""
        if table.num_rows == 0:
            return {}
        runs = series_runs(table.select(["series_id", "ts", "value"]))
        ts = runs.table.column("ts").cast(pa.int64()).to_numpy()
        values = runs.table.column("value").to_numpy()
        first_of_series = np.zeros(ts.size, dtype=bool)
        first_of_series[runs.offsets[:-1]] = True
        # runs keep arrival order within equal (series, ts): the last of each is the one kept
        last_of_dup = np.r_[first_of_series[1:] | (ts[1:] != ts[:-1]), True]
        self.late_points += int(ts.size - last_of_dup.sum())
        ts, values = ts[last_of_dup], values[last_of_dup]
        offsets = np.r_[0, np.cumsum(last_of_dup)][runs.offsets].tolist()
        added: NewPoints = {}
        for sid, lo, hi in zip(runs.names, offsets[:-1], offsets[1:], strict=True):
            window = self._windows.get(sid)
            if window is None:
                window = self._windows[sid] = SeriesWindow(self.capacity)
            s_ts, s_values = ts[lo:hi], values[lo:hi]
            last = window.last_ts
            if last is not None and s_ts[0] <= last:
                newer = s_ts > last
                self.late_points += int(s_ts.size - newer.sum())
                s_ts, s_values = s_ts[newer], s_values[newer]
            if s_ts.size:
                window.append(s_ts, s_values)
                added[sid] = (s_ts, s_values)
        return added
