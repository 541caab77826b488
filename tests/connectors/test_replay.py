"""The replay source: time-axis shift, speed on a deterministic fake clock, restart continuity."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from sparkhu.connectors.replay import AMPDS2_SHIFT, ReplaySource, shift_points, shift_to_now
from sparkhu.demo.generator import AMPDS2_START, generate
from sparkhu.errors import ConfigError, InputError
from sparkhu.series import POINT_SCHEMA, QUARANTINE_SCHEMA, points
from sparkhu.timeaxis import parse_offset


class FakeClock:
    """Wall time that only moves when the source sleeps (or the test says so)."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def replay(data: pa.Table, clock: FakeClock, **kwargs) -> ReplaySource:
    return ReplaySource("replay", data, clock=clock, sleep=clock.sleep, **kwargs)


def ts_us(table: pa.Table) -> np.ndarray:
    return table["ts"].cast(pa.int64()).to_numpy()


@pytest.fixture(scope="module")
def day() -> pa.Table:
    """One day of 11 minutely AMPds2-like series, no defects."""
    return generate(days=1, meters=10, seed=5, defects=False).points


def test_shift_by_3196_days_is_the_original_translation(day: pa.Table):
    assert AMPDS2_SHIFT.total_seconds() == 276_134_400
    clock = FakeClock(0.0)
    out = pa.concat_tables(
        b for b, _ in replay(day, clock, shift=AMPDS2_SHIFT, speed=float("inf")).read(None, print)
    )
    assert out.num_rows == day.num_rows and out.schema.equals(POINT_SCHEMA)
    assert np.array_equal(np.sort(ts_us(out)), np.sort(ts_us(day) + 276_134_400_000_000))
    first = datetime.fromtimestamp(int(ts_us(out).min()) / 1e6, UTC)
    assert first == AMPDS2_START + timedelta(days=3196) == datetime(2020, 12, 31, 7, 0, tzinfo=UTC)
    assert clock.slept == 0  # infinite speed never waits


MINUTE_US = 60_000_000


def on_the_minute(now_us: int) -> int:
    return now_us // MINUTE_US * MINUTE_US


def test_end_now_puts_the_last_point_at_the_start_wall_time(day: pa.Table):
    now = 1_700_000_040.0  # a whole minute
    clock = FakeClock(now)
    batches = list(replay(day, clock, shift="end_now", speed=float("inf")).read(None, print))
    out = pa.concat_tables(b for b, _ in batches)
    assert ts_us(out).max() == int(now * 1e6)
    assert batches[-1][1]["shift_us"] == int(now * 1e6) - ts_us(day).max()
    start = list(replay(day, FakeClock(now), shift="start_now", speed=float("inf")).read(None, print))
    assert ts_us(pa.concat_tables(b for b, _ in start)).min() == int(now * 1e6)


def test_now_anchored_shifts_keep_minutely_data_on_whole_minutes(day: pa.Table):
    now = 1_700_000_017.123456  # an odd wall time: the points stay on the minute, at or before it
    for shift in ("end_now", "start_now"):
        out = pa.concat_tables(
            b for b, _ in replay(day, FakeClock(now), shift=shift, speed=float("inf")).read(None, print)
        )
        stamps = ts_us(out)
        assert (stamps % MINUTE_US == 0).all(), shift
        anchor = stamps.max() if shift == "end_now" else stamps.min()
        assert anchor == on_the_minute(int(now * 1e6)), shift


def test_a_replay_that_may_not_run_ahead_waits_for_the_wall_clock(day: pa.Table):
    def minutes_emitted(future: bool) -> int:
        now = 1_700_000_040.0
        clock = FakeClock(now)
        source = replay(day, clock, shift="start_now", speed=60.0, tick_s=1.0, future=future)
        stamps: set[int] = set()
        for batch, _ in source.read(None, print):
            if batch.num_rows and not future:
                assert ts_us(batch).max() <= clock.now * 1e6  # never stamped after the wall clock
            stamps |= set(ts_us(batch).tolist())
            if clock.now >= now + 180:
                return len(stamps)
        raise AssertionError("the replay ended early")

    assert minutes_emitted(future=True) > 150  # ×60: three hours of data in three minutes, ahead of the clock
    assert minutes_emitted(future=False) == 4  # caught up at once: real time, minutes 0 to 3


def test_speed_sixty_emits_one_minute_of_data_per_wall_second(day: pa.Table):
    clock = FakeClock(1_000.0)
    source = replay(day, clock, shift=timedelta(0), speed=60.0, tick_s=0.25)
    origin = ts_us(day).min()
    emitted: list[tuple[float, pa.Table, dict]] = []
    for batch, pos in source.read(None, print):
        if batch.num_rows:
            emitted.append((clock.now, batch, pos))
        if len(emitted) == 30:
            break
    for wall, batch, pos in emitted:
        bound = origin + (wall - 1_000.0) * 60.0 * 1e6
        assert ts_us(batch).max() <= bound  # nothing early
        assert pos["emitted_until_us"] == ts_us(batch).max()
    # each emission is exactly the next minute of all 11 series, at one wall second per minute
    assert [b.num_rows for _, b, _ in emitted] == [11] * 30
    assert [w for w, _, _ in emitted] == [1_000.0 + i for i in range(30)]
    got = np.concatenate([ts_us(b) for _, b, _ in emitted])
    assert np.array_equal(np.unique(got), origin + 60_000_000 * np.arange(30))


def test_restart_continues_without_loss_or_duplicates_and_keeps_the_shift(day: pa.Table):
    clock = FakeClock(5_000.0)
    first, position = [], None
    for batch, pos in replay(day, clock, shift="end_now", speed=600.0).read(None, print):
        first.append(batch)
        position = pos
        if sum(b.num_rows for b in first) > 3_000:
            break  # the process dies
    clock.now += 3_600  # restarted an hour later: the shift stays the one stored
    rest = [b for b, _ in replay(day, clock, shift="end_now", speed=600.0).read(position, print)]
    out = pa.concat_tables(first + rest)
    assert out.num_rows == day.num_rows
    shift = position["shift_us"]
    assert shift == on_the_minute(int(5_000.0 * 1e6) - ts_us(day).max())
    key = [(s, t) for s, t in zip(out["series_id"].to_pylist(), ts_us(out).tolist(), strict=True)]
    expected = [
        (s, t + shift) for s, t in zip(day["series_id"].to_pylist(), ts_us(day).tolist(), strict=True)
    ]
    assert len(set(key)) == len(key) and set(key) == set(expected)


def test_batches_respect_the_limit_without_splitting_a_timestamp(day: pa.Table):
    batches = [
        b
        for b, _ in replay(day, FakeClock(0), shift=timedelta(0), speed=float("inf"), max_batch_rows=25).read(
            None, print
        )
    ]
    assert all(b.num_rows == 22 for b in batches[:-1])  # two whole minutes of 11 series
    bounds = [(ts_us(b).min(), ts_us(b).max()) for b in batches]
    assert all(prev[1] < nxt[0] for prev, nxt in itertools.pairwise(bounds))
    big = points("a/b/c", [0] * 10 + [60_000_000], [1.0] * 11)  # one timestamp bigger than the limit
    sizes = [
        b.num_rows
        for b, _ in replay(big, FakeClock(0), shift=timedelta(0), speed=float("inf"), max_batch_rows=4).read(
            None, print
        )
    ]
    assert sizes == [10, 1]


def test_max_rate_paces_the_output(day: pa.Table):
    clock = FakeClock(0.0)
    source = replay(
        day, clock, shift=timedelta(0), speed=float("inf"), max_batch_rows=1_100, max_rate=5_500.0
    )
    total = sum(b.num_rows for b, _ in source.read(None, print))
    assert total == day.num_rows
    assert clock.now == pytest.approx(day.num_rows / 5_500.0, rel=0.01)


def test_loop_starts_over_shifted_by_the_span(day: pa.Table):
    clock = FakeClock(0.0)
    source = replay(day, clock, shift=timedelta(0), speed=float("inf"), loop=True)
    out = []
    for batch, _ in source.read(None, print):
        out.append(batch)
        if sum(b.num_rows for b in out) >= 2 * day.num_rows:
            break
    ts = np.unique(np.concatenate([ts_us(b) for b in out]))
    assert len(ts) == 2 * 1440 and np.all(np.diff(ts) == 60_000_000)  # the second day follows the first


def test_loader_callable_and_rows_without_timestamp_are_quarantined():
    table = pa.table(
        {
            "series_id": ["a/b/c", "a/b/c", None],
            "ts": pa.array([60, None, 0], pa.timestamp("s")),
            "value": [1.0, 2.0, 3.0],
        }
    )
    bad: list[pa.Table] = []
    calls = []

    def load() -> pa.Table:
        calls.append(1)
        return table

    source = ReplaySource("r", load, shift=timedelta(0), speed=float("inf"))
    out = [b for b, _ in source.read(None, bad.append)]
    assert sum(b.num_rows for b in out) == 1 and len(calls) == 1
    assert [(r["location"], r["field"]) for r in pa.concat_tables(bad).to_pylist()] == [
        ("row 2", "ts"),
        ("row 3", "series_id"),
    ]
    assert all(b.schema.equals(QUARANTINE_SCHEMA) for b in bad)
    assert list(ReplaySource("e", points("a/b/c", [], []), speed=1.0).read(None, print)) == []


def test_helpers_shift_tables(day: pa.Table):
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    moved = shift_to_now(day, now)
    assert ts_us(moved).max() == int(now.timestamp() * 1e6)
    assert np.array_equal(ts_us(shift_points(day, timedelta(seconds=1))), ts_us(day) + 1_000_000)
    assert moved.schema.equals(POINT_SCHEMA)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shift": "yesterday"}, "shift='yesterday'"),
        ({"speed": 0}, "must be positive"),
        ({"tick_s": -1}, "must be positive"),
        ({"max_rate": 0}, "must be positive"),
    ],
)
def test_bad_settings_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ReplaySource("r", points("a/b/c", [0], [1.0]), **kwargs)


def test_points_without_the_point_columns_are_input_errors():
    with pytest.raises(InputError, match="missing column"):
        list(ReplaySource("r", pa.table({"x": [1]})).read(None, print))


def test_shifts_spelled_as_settings_spell_them(day: pa.Table):
    assert parse_offset("+3196d") == AMPDS2_SHIFT
    by_text = replay(day, FakeClock(0.0), shift=parse_offset("-90min"), speed=float("inf"))
    out = pa.concat_tables(b for b, _ in by_text.read(None, print))
    assert np.array_equal(np.sort(ts_us(out)), np.sort(ts_us(day) - 90 * 60_000_000))
    anchored = replay(day, FakeClock(5_000.0), shift=parse_offset("end_now"), speed=float("inf"))
    batches = list(anchored.read(None, print))
    assert batches[-1][1]["shift_us"] == on_the_minute(5_000_000_000 - ts_us(day).max())
