"""The replay source: history played back as live data, shifted on the time axis.

The original system's time-axis translator moved AMPds2 (2012 to 2014) by +3196 days so it
looked live. :class:`ReplaySource` does that and plays it at ``speed`` times real time: with
``shift``

* ``"end_now"`` the data is moved so its last point is at the wall time of the first start,
* ``"start_now"`` so its first point is then (at ``speed=1`` the data arrives as it happens),
* a :class:`~datetime.timedelta` moves it by that much (``AMPDS2_SHIFT`` = 3196 days).

The ``end_now`` and ``start_now`` shifts are whole multiples of the data's period (its most common
step, at least a second): minutely data stays on whole minutes, the last (first) point lands on
the last step at or before the wall time. With ``future=False`` (a ``[[sources]]`` entry's and
``sparkhu replay``'s default) no point is emitted before the wall clock reaches its timestamp: a
replay faster than real time catches up at ``speed`` and then plays at real time, never ahead.

Settings spell it as text (``+3196d``, ``-2h``, ``end_now``): :func:`sparkhu.timeaxis.parse_offset`
turns that into this argument.

The shift is fixed at the first start and kept in the position. With ``origin`` the first
shifted timestamp and ``w0`` the wall time at start, at wall time ``w`` every point with
shifted ``ts <= origin + (w - w0) * speed`` has been emitted (``speed=60``: an hour of data
per minute). The position is ``{shift_us, emitted_until_us}``; a restart emits exactly the
points after ``emitted_until_us`` and its clock resumes from there (no burst to catch up).
Batches never split one timestamp, so the position is exact. When the data is exhausted
the source ends, or with ``loop=True`` starts over, shifted by the data's span plus one step.
On idle ticks it yields an empty batch (same position) so the caller can stop promptly.

>>> from sparkhu.series import points
>>> fake = [0.0]
>>> src = ReplaySource("r", points("a/b/c", [0, 60_000_000, 120_000_000], [1.0, 2.0, 3.0]),
...                    shift=timedelta(days=1), speed=60.0, clock=lambda: fake[0],
...                    sleep=lambda s: fake.__setitem__(0, fake[0] + s), tick_s=1.0)
>>> [(b.num_rows, p["emitted_until_us"]) for b, p in src.read(None, print) if b.num_rows]
[(1, 86400000000), (1, 86460000000), (1, 86520000000)]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from sparkhu.connectors.base import Position, QuarantineFn, Source
from sparkhu.connectors.files import FilesSettings, read_all
from sparkhu.errors import ConfigError, InputError
from sparkhu.series import POINT_SCHEMA, check_points, conform, quarantine_records
from sparkhu.timeaxis import OFFSET_FORMS, TS_TYPE, US_PER_S, duration_us, parse_offset

AMPDS2_SHIFT = timedelta(days=3196)
"""The original translator's offset: 276,134,400 s, so 2012-04-01 became 2020-12-31."""


def shift_points(table: pa.Table, offset: timedelta | int) -> pa.Table:
    """The points with every timestamp moved by ``offset`` (a timedelta or µs)."""
    shift = duration_us(offset) if isinstance(offset, timedelta) else int(offset)
    ts = pc.add(table.column("ts").cast(pa.int64()), pa.scalar(shift, pa.int64())).cast(TS_TYPE)
    return table.set_column(table.schema.get_field_index("ts"), POINT_SCHEMA.field("ts"), ts)


def shift_to_now(table: pa.Table, now: datetime | float) -> pa.Table:
    """The points moved so that the last one is at ``now`` (a datetime or Unix seconds)."""
    if table.num_rows == 0:
        return table
    now_us = round((now.timestamp() if isinstance(now, datetime) else now) * US_PER_S)
    last = pc.max(table.column("ts").cast(pa.int64())).as_py()
    return shift_points(table, now_us - last)


def aligned_shift(shift_us: int, ts: np.ndarray) -> int:
    """``shift_us`` rounded down to a whole number of the data's periods (the most common step between
    its sorted timestamps ``ts``, in µs; whole seconds at least), so shifted data stays on its grid.

    >>> minutes = np.arange(3) * 60_000_000
    >>> aligned_shift(1_700_000_000_123_456, minutes) / 1e6
    1699999980.0
    """
    gaps = np.diff(np.unique(ts))
    step = int(np.median(gaps)) if len(gaps) else US_PER_S
    if step <= 0 or step % US_PER_S:
        step = US_PER_S  # irregular or sub-second data: whole seconds
    return (shift_us // step) * step


class ReplaySource(Source):
    """Points (or a loader of them) replayed at ``speed`` times real time, shifted (see the module)."""

    def __init__(
        self,
        name: str,
        points: pa.Table | Callable[[], pa.Table],
        *,
        shift: str | timedelta = "end_now",
        speed: float = 60.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        tick_s: float = 0.1,
        max_batch_rows: int = 100_000,
        max_rate: float | None = None,
        loop: bool = False,
        future: bool = True,
    ) -> None:
        if not (isinstance(shift, timedelta) or shift in ("end_now", "start_now")):
            raise ConfigError(f"replay {name}: shift={shift!r}; expected end_now, start_now or a timedelta")
        if (
            not speed > 0
            or not tick_s > 0
            or max_batch_rows < 1
            or (max_rate is not None and not max_rate > 0)
        ):
            raise ConfigError(f"replay {name}: speed, tick_s, max_batch_rows and max_rate must be positive")
        self.name = name
        self.shift, self.speed, self.tick_s = shift, float(speed), float(tick_s)
        self.clock, self.sleep = clock, sleep
        self.max_batch_rows, self.max_rate, self.loop = max_batch_rows, max_rate, loop
        self.future = future
        self._points = points
        self._sorted: pa.Table | None = None

    def _load(self, quarantine: QuarantineFn) -> pa.Table:
        if self._sorted is None:
            table = conform(self._points() if callable(self._points) else self._points)
            check = check_points(table)  # shifted points out of range are the runner's to quarantine
            if check.rows:
                locations = [f"row {r + 1}" for r in check.rows]
                quarantine(quarantine_records(self.name, locations, check.fields, check.reasons, check.raws))
            table = check.points
            self._sorted = table.take(pc.sort_indices(table, [("ts", "ascending")]))
        return self._sorted

    def read(
        self, position: Mapping[str, Any] | None, quarantine: QuarantineFn
    ) -> Iterator[tuple[pa.Table, Position]]:
        """Emit the points due by the replay clock, after ``position``; end when exhausted."""
        table = self._load(quarantine)
        n = table.num_rows
        if n == 0:
            return
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        wall0 = self.clock()
        pos = dict(position or {})
        if pos.get("shift_us") is not None:
            shift = int(pos["shift_us"])
        elif isinstance(self.shift, timedelta):
            shift = duration_us(self.shift)
        else:
            anchor = int(ts[-1] if self.shift == "end_now" else ts[0])
            shift = aligned_shift(round(wall0 * US_PER_S) - anchor, ts)
        if pos.get("emitted_until_us") is None:
            base, emitted = int(ts[0]) + shift, int(ts[0]) + shift - 1
        else:
            base = emitted = int(pos["emitted_until_us"])
        gaps = np.diff(np.unique(ts))
        step = int(gaps.min()) if len(gaps) else 1
        start = int(np.searchsorted(ts, emitted - shift, side="right"))
        sent = 0
        while True:
            if start >= n:
                if not self.loop:
                    return
                shift += int(ts[-1] - ts[0]) + step
                start = int(np.searchsorted(ts, emitted - shift, side="right"))
                continue
            if math.isinf(self.speed):
                end = n
            else:
                now = self.clock()
                cursor = base + math.floor((now - wall0) * self.speed * US_PER_S)
                if not self.future:  # caught up with the wall clock: real time from here on
                    cursor = min(cursor, math.floor(now * US_PER_S))
                end = int(np.searchsorted(ts, cursor - shift, side="right"))
            if end <= start:
                yield POINT_SCHEMA.empty_table(), {"shift_us": shift, "emitted_until_us": emitted}
                self.sleep(self.tick_s)
                continue
            if end - start > self.max_batch_rows:  # cut on a timestamp boundary
                at = ts[start + self.max_batch_rows]
                end = int(np.searchsorted(ts, at, side="left"))
                if end <= start:
                    end = int(np.searchsorted(ts, at, side="right"))
            batch = shift_points(table.slice(start, end - start), shift)
            emitted, start = int(ts[end - 1]) + shift, end
            yield batch, {"shift_us": shift, "emitted_until_us": emitted}
            sent += batch.num_rows
            if self.max_rate is not None:
                ahead = sent / self.max_rate - (self.clock() - wall0)
                if ahead > 0:
                    self.sleep(ahead)


class ReplaySourceSettings(FilesSettings):
    """A ``[[sources]]`` entry of ``kind = "replay"``: files of history played back as live data.

    >>> spec = ReplaySourceSettings(name="live", kind="replay", path="h.parquet", source="home",
    ...                             measurement="power", shift="+3196d", speed=60)
    >>> spec.open().name
    'live'
    """

    kind: Literal["replay"] = "replay"
    speed: float = Field(default=60.0, gt=0.0)
    """Data seconds per wall-clock second (60: an hour of data a minute) while behind the wall clock."""
    shift: str = "end_now"
    """``end_now`` (the last point at the wall time of the first start, on the data's grid),
    ``start_now`` or a fixed offset such as ``+3196d``."""
    future: bool = False
    """Emit points stamped after the wall clock; false: they wait for it (no replay runs ahead)."""

    @field_validator("shift")
    @classmethod
    def _shift_form(cls, shift: str) -> str:
        try:
            parse_offset(shift)
        except InputError:
            raise ValueError(f"expected {OFFSET_FORMS}") from None
        return shift

    def open(self) -> ReplaySource:
        """The connector this entry describes."""
        files = self.files()
        return ReplaySource(
            self.name,
            lambda: read_all(files),
            shift=parse_offset(self.shift),
            speed=self.speed,
            future=self.future,
        )
