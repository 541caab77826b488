"""Drift detection: the vectorised Page-Hinkley bank, its state, and the demo's recorded level shift."""

from __future__ import annotations

import pickle
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from tests.online.test_checkpoint import drain

from sparkhu.demo.generator import generate
from sparkhu.errors import InputError
from sparkhu.online.drift import KINDS, DriftWatch, Kind, PageHinkleyBank, RiverBank, drift_events
from sparkhu.online.learner import OnlinePredictor
from sparkhu.online.scorer import OnlineScorer
from sparkhu.online.scoring import live_mae
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.predictions import PredictionStore
from sparkhu.stream.codecs import publish_points


def feed_one_by_one(bank: PageHinkleyBank, keys: list[str], values: np.ndarray) -> np.ndarray:
    return np.array(
        [bank.update(bank.slots([k]), np.array([v]))[0][0] for k, v in zip(keys, values, strict=True)]
    )


def test_a_batch_of_many_series_equals_feeding_them_one_point_at_a_time():
    rng = np.random.default_rng(0)
    keys = rng.choice(["a/b/c", "a/b/d", "a/b/e"], size=900).tolist()
    values = rng.normal(0, 1, 900) + np.where(np.arange(900) > 600, 4.0, 0.0)
    batch, single = KINDS["level"].bank(), KINDS["level"].bank()
    alarms, _ = batch.update(batch.slots(keys), values)
    assert alarms.any()
    assert (alarms == feed_one_by_one(single, keys, values)).all()
    for name in batch.state:
        assert np.array_equal(batch.state[name][: len(batch)], single.state[name][: len(single)])


def test_stationary_noise_raises_no_alarm_and_a_shift_is_found_within_the_minimum_delay():
    kind = KINDS["level"]
    rng = np.random.default_rng(1)
    n = 20_000
    bank = kind.bank()
    alarms, _ = bank.update(bank.slots(["a/b/c"] * n), rng.normal(50.0, 3.0, n))
    assert alarms.sum() == 0
    shifted = np.r_[rng.normal(50.0, 3.0, 500), rng.normal(62.0, 3.0, 200)]  # +4 sd
    bank = kind.bank()
    alarms, stats = bank.update(bank.slots(["a/b/c"] * shifted.size), shifted)
    first = int(np.flatnonzero(alarms)[0])
    floor = kind.threshold / (kind.clip - kind.delta)  # every point adds at most clip - delta
    assert 500 + floor <= first + 1 <= 500 + 2 * floor
    assert stats[first] > kind.threshold


def test_state_saved_and_restored_midway_continues_exactly():
    rng = np.random.default_rng(2)
    values = np.r_[rng.normal(0, 1, 300), rng.normal(5, 1, 100)]
    times = np.arange(values.size, dtype=np.int64)
    whole = DriftWatch()
    want = whole.observe_points(["a/b/c"] * 400, times, values, np.r_[np.nan, values[:-1]])
    first = DriftWatch()
    first.observe_points(["a/b/c"] * 250, times[:250], values[:250], np.r_[np.nan, values[:249]])
    saved = pickle.loads(pickle.dumps(first.series_state("a/b/c")))
    second = DriftWatch()
    second.load_series(saved)
    got = second.observe_points(["a/b/c"] * 150, times[250:], values[250:], values[249:-1])
    assert len(want) > 0 and got.kind == want.kind and got.ts.tolist() == want.ts.tolist()


def test_a_copy_is_independent():
    bank = KINDS["level"].bank()
    bank.update(bank.slots(["a/b/c"] * 100), np.arange(100.0))
    twin = bank.copy()
    twin.update(twin.slots(["a/b/c", "x/y/z"]), np.array([1e6, 1.0]))
    assert len(bank) == 1 and bank.state["k"][0] != twin.state["k"][0]


def test_river_detectors_serve_behind_the_same_interface():
    watch = DriftWatch({"level": Kind("level", "values", 0.0, 1.0, 2, 1.0, "both", detector="adwin")})
    rng = np.random.default_rng(4)
    values = np.r_[rng.normal(0, 1, 500), rng.normal(6, 1, 200)]
    found = watch.observe_points(["a/b/c"] * 700, np.arange(700), values, np.full(700, np.nan))
    assert found.detector[0] == "adwin" and 500 <= int(found.ts[0]) < 560
    restored = DriftWatch(watch.kinds)
    restored.load_series(pickle.loads(pickle.dumps(watch.series_state("a/b/c"))))
    assert len(restored.banks["level"]) == 1


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: PageHinkleyBank(threshold=0), "threshold"),
        (lambda: PageHinkleyBank(delta=-1), "delta"),
        (lambda: PageHinkleyBank(min_points=1), "min_points"),
        (lambda: PageHinkleyBank(clip=0), "clip"),
        (lambda: PageHinkleyBank(mode="sideways"), "mode"),  # type: ignore[arg-type]
        (lambda: Kind("level", "", 0.5, 10, 10, 3, "both", detector="magic").bank(), "detector"),
    ],
)
def test_impossible_settings_are_named(make, field):
    with pytest.raises(InputError) as caught:
        make()
    assert caught.value.field == field


def test_river_bank_counts_its_slots():
    from river.drift import PageHinkley

    bank = RiverBank(PageHinkley, "river_page_hinkley")
    bank.slots(["a/b/c", "a/b/d", "a/b/c"])
    assert len(bank) == 2 and sorted(bank.by_series) == ["a/b/c", "a/b/d"]


@pytest.mark.integration
def test_the_demos_recorded_level_shift_is_detected_in_a_replay(bus, tmp_path):
    """The demo's generator, its level shift read from the recorded defects, replayed through the bus."""
    data = generate(days=2, meters=10, seed=7)
    shift = data.defects.filter(pc.equal(data.defects["kind"], "level_shift")).to_pylist()[0]
    start, sid = shift["start_ts"], shift["series_id"]
    other = "ampds2/electricity/WHE.P"  # the clean sum: no level shift recorded on it
    window = data.points.filter(
        pc.and_(
            pc.is_in(data.points["series_id"].cast(pa.string()), pa.array([sid, other])),
            pc.and_(
                pc.greater_equal(
                    data.points["ts"], pa.scalar(start - timedelta(hours=3), data.points["ts"].type)
                ),
                pc.less(data.points["ts"], pa.scalar(start + timedelta(minutes=90), data.points["ts"].type)),
            ),
        )
    ).sort_by([("ts", "ascending")])
    ts = window.column("ts").cast(pa.int64()).to_numpy()
    for minute in np.unique(ts // 600_000_000):  # ten minutes per message, as a fast replay sends them
        publish_points(bus, "points", window.filter(pa.array(ts // 600_000_000 == minute)))
    with Catalog(f"sqlite:///{tmp_path}/c.db") as catalog:
        scorer = OnlineScorer(catalog, "online/points", window=60)
        predictor = OnlinePredictor(
            bus, "points", PredictionStore(catalog), horizon=5, window=60, min_points=10, scorer=scorer
        )
        drain(predictor)
        predictor.close()
        level = [e for e in drift_events(catalog, sid, kind="level") if e.ts >= start]
        assert level, f"the level shift of {sid} at {start} ({shift['detail']}) was not detected"
        assert level[0].ts - start < timedelta(minutes=45)
        assert scorer.stats().scored > 0 and live_mae(catalog, sid, "ses", last=30) is not None
