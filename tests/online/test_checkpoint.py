"""The online predictor's checkpoint: after a crash at any point the prediction store is the same.

In-process tests of the two halves of it (forecasts that do not depend on how polls cut the
stream; state restored exactly at the offsets it was saved with). ``test_crash.py`` kills a
real process.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow as pa
import pytest
from tests.online.conftest import MIN, SERIES, T0, TOPIC

from sparkhu.online.learner import OnlinePredictor, checkpoint_offsets
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import PredictionStore
from sparkhu.stream.codecs import publish_points

pytestmark = pytest.mark.integration


@pytest.fixture
def stores(settings, tmp_path):
    """Two prediction stores: the run under test (the session's catalog) and a reference (SQLite)."""
    with Catalog(settings.storage.catalog) as tested, Catalog(f"sqlite:///{tmp_path}/ref.db") as ref:
        yield PredictionStore(tested.engine), PredictionStore(ref.engine)


def minutes(start: int, n: int) -> pa.Table:
    """n one-minute points per series from minute ``start``; a different wave per series."""
    ids = np.repeat(SERIES, n).tolist()
    mins = np.tile(np.arange(start, start + n), len(SERIES))
    k = np.repeat(np.arange(len(SERIES)), n)
    return points(ids, T0 + mins * MIN, 100.0 * (k + 1) + 10.0 * np.sin(mins / (3.0 + k)))


def drain(predictor: OnlinePredictor) -> int:
    quiet_s = 3.0 if predictor.bus.uri.startswith("kafka://") else 0.0
    total, idle_since = 0, time.monotonic()
    while True:
        n = predictor.run_once(timeout=0.05)
        total += n
        if n:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= quiet_s:
            return total


def make(bus, store, **kwargs) -> OnlinePredictor:
    args = {"horizon": 5, "min_points": 5, "window": 30} | kwargs
    return OnlinePredictor(bus, TOPIC, store, **args)


def contents(store: PredictionStore) -> dict[str, tuple[list, list]]:
    """Raw forecasts and blended values (without the wall-clock ``updated_at``) per series."""
    out = {}
    for sid in SERIES:
        raw = store.raw(sid).to_pylist()
        blended = store.blended(sid).drop_columns(["updated_at"]).to_pylist()
        out[sid] = (raw, blended)
    return out


def assert_same(tested: PredictionStore, reference: PredictionStore) -> None:
    got, want = contents(tested), contents(reference)
    for sid in SERIES:
        (raw, blended), (raw_ref, blended_ref) = got[sid], want[sid]
        assert [r["target_ts"] for r in blended] == [r["target_ts"] for r in blended_ref], sid
        assert [(r["origin_ts"], r["target_ts"]) for r in raw] == [
            (r["origin_ts"], r["target_ts"]) for r in raw_ref
        ]
        assert [r["updates"] for r in blended] == [r["updates"] for r in blended_ref], sid
        for name in ("value", "lower", "upper"):
            assert np.allclose([r[name] for r in blended], [r[name] for r in blended_ref], rtol=1e-12), (
                sid,
                name,
            )


def test_forecasts_do_not_depend_on_how_polls_cut_the_stream(bus, stores):
    tested, reference = stores
    for minute in range(0, 20, 2):  # ten ticks: one message per partition each
        publish_points(bus, TOPIC, minutes(minute, 2))
    one_by_one = make(bus, tested, group="one", max_messages=1)
    all_at_once = make(bus, reference, group="all")
    drain(one_by_one)
    drain(all_at_once)
    assert all_at_once.stats().batches < one_by_one.stats().batches
    origins = sorted({r["origin_ts"] for r in tested.raw(SERIES[0]).to_pylist()})
    assert [int(o.timestamp()) * 1_000_000 - T0 for o in origins] == [m * MIN for m in range(5, 20, 2)]
    assert_same(tested, reference)
    one_by_one.close()
    all_at_once.close()


def test_crash_after_the_store_and_before_the_commit_with_the_lake_ahead(bus, stores, tmp_path):
    tested, reference = stores
    lake = Lake(str(tmp_path / "lake"))
    lake.write("raw", TOPIC, minutes(0, 40))  # the history, ingested before the live stream
    for minute in range(40, 60, 2):
        publish_points(bus, TOPIC, minutes(minute, 2))
    uninterrupted = make(bus, reference, group="ref", lake=lake)
    drain(uninterrupted)
    uninterrupted.close()

    before = make(bus, tested, lake=lake, max_messages=4)
    before.run_once(timeout=1.0)
    before.run_once(timeout=1.0)
    # The process dies after the forecasts were stored, before the bus commit: what the
    # predictor's round does up to that point, by hand.
    unstored = before._loop.fetch(timeout=1.0)
    assert unstored.messages
    before._write(before._absorb(unstored))
    before.close()  # its consumer leaves the group without committing
    lake.write("raw", TOPIC, minutes(40, 20))  # the lake sink, another group, is ahead of it all

    after = make(bus, tested, lake=lake, max_messages=3)  # and polls cut the stream differently
    drain(after)
    assert after.stats().late_points == 0
    assert checkpoint_offsets(tested, "online", TOPIC) == {
        p: o for p, o in bus.end_offsets(TOPIC).items() if o
    }
    assert after.stats().messages >= len(unstored.messages)  # delivered again, not absorbed twice
    assert_same(tested, reference)
    after.close()


def test_a_checkpoint_of_another_window_is_not_restored(bus, stores, caplog):
    tested, _ = stores
    publish_points(bus, TOPIC, minutes(0, 10))
    first = make(bus, tested)
    drain(first)
    first.close()
    publish_points(bus, TOPIC, minutes(10, 3))
    second = make(bus, tested, window=20)
    with caplog.at_level(logging.INFO, logger="sparkhu.online.learner"):
        drain(second)
    assert "starting afresh" in caplog.text
    assert second.windows["home/power/A"].ts.size == 3  # not the other window's state
    assert "home/power/A" not in second.models  # too few points for a model yet
    second.close()
    third = make(bus, tested, window=20)
    third.resume()
    assert third.windows["home/power/A"].ts.size == 3  # its own checkpoint from then on


def test_a_first_start_leaves_what_the_bus_delivers_to_the_bus(bus, stores, tmp_path):
    tested, reference = stores
    history, ahead = Lake(str(tmp_path / "history")), Lake(str(tmp_path / "ahead"))
    for lake in (history, ahead):
        lake.write("raw", TOPIC, minutes(0, 40))
    for minute in range(40, 50, 2):
        publish_points(bus, TOPIC, minutes(minute, 2))
    ahead.write("raw", TOPIC, minutes(40, 10))  # the lake sink wrote the live points first
    uninterrupted = make(bus, reference, group="ref", lake=history)
    drain(uninterrupted)
    first_start = make(bus, tested, lake=ahead)
    drain(first_start)
    assert first_start.stats().late_points == 0
    assert_same(tested, reference)
    uninterrupted.close()
    first_start.close()
