"""OnlinePredictor on a real bus, a real catalog, the prediction store and a lake.

Integration tests: the SQLite bus and catalog by default, Kafka (Tansu) and PostgreSQL with
``--sparkhu-config=distributed`` (the ``settings`` fixture names them).
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pyarrow as pa
import pytest
from tests.online.conftest import MIN, SERIES, T0, TOPIC

from sparkhu.errors import CatalogError, ForecastError
from sparkhu.forecast.models import SES
from sparkhu.online.learner import OnlinePredictor
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import PredictionStore
from sparkhu.stream.codecs import encode_arrow, publish_points

pytestmark = pytest.mark.integration


@pytest.fixture
def catalog(settings):
    with Catalog(settings.storage.catalog) as cat:
        yield cat


@pytest.fixture
def store(catalog):
    return PredictionStore(catalog.engine)


@pytest.fixture
def lake(tmp_path):
    return Lake(str(tmp_path / "lake"))


def minutes(start: int, n: int) -> pa.Table:
    """n one-minute points per series from minute ``start``; series k has values 10k + minute."""
    ids = np.repeat(SERIES, n).tolist()
    mins = np.tile(np.arange(start, start + n), len(SERIES))
    values = np.repeat(np.arange(len(SERIES)) * 10.0, n) + mins
    return points(ids, T0 + mins * MIN, values)


def drain(predictor: OnlinePredictor) -> int:
    """Poll until the bus stays quiet: a moment on SQLite, a few seconds on Kafka (group join, fetch)."""
    quiet_s = 3.0 if predictor.bus.uri.startswith("kafka://") else 0.0
    total, idle_since = 0, time.monotonic()
    while True:
        n = predictor.run_once(timeout=0.05)
        total += n
        if n:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= quiet_s:
            return total


def committed_offsets(bus) -> dict[int, int]:
    with bus.consumer("online", [TOPIC]) as consumer:
        return {partition: offset for (_, partition), offset in consumer.committed().items()}


def make(bus, store, **kwargs) -> OnlinePredictor:
    args = {"model_params": {"alpha": 0.5}, "horizon": 5, "min_points": 5, "window": 30} | kwargs
    return OnlinePredictor(bus, TOPIC, store, **args)


def test_forecasts_are_stored_blended_and_offsets_committed(bus, store):
    predictor = make(bus, store)
    publish_points(bus, TOPIC, minutes(0, 10))
    assert drain(predictor) > 0
    model_a = predictor.models["home/power/A"]
    # second tick: 3 more minutes -> the model is updated, not refitted
    publish_points(bus, TOPIC, minutes(10, 3))
    drain(predictor)
    assert predictor.models["home/power/A"] is model_a
    expected = SES(alpha=0.5).fit(np.arange(13.0))
    assert model_a.level_ == pytest.approx(expected.level_) and model_a.n_obs_ == 13

    for k, sid in enumerate(SERIES):
        raw = store.raw(sid)
        origins = sorted(set(raw.column("origin_ts").cast("int64").to_pylist()))
        assert origins == [T0 + 9 * MIN, T0 + 12 * MIN]
        blended = store.blended(sid)
        targets = blended.column("target_ts").cast("int64").to_pylist()
        assert targets == [T0 + m * MIN for m in range(10, 18)]  # 9+1..9+5 and 12+1..12+5
        updates = dict(zip(targets, blended.column("updates").to_pylist(), strict=True))
        assert updates[T0 + 13 * MIN] == 2 and updates[T0 + 14 * MIN] == 2 and updates[T0 + 10 * MIN] == 1
        first = SES(alpha=0.5).fit(np.arange(10.0) + 10 * k).level_
        second = SES(alpha=0.5).fit(np.arange(13.0) + 10 * k).level_
        value_at = dict(zip(targets, blended.column("value").to_pylist(), strict=True))
        assert value_at[T0 + 14 * MIN] == pytest.approx(0.6 * second + 0.4 * first)
        assert value_at[T0 + 17 * MIN] == pytest.approx(second)
        lower, upper = blended.column("lower").to_pylist(), blended.column("upper").to_pylist()
        assert all(lo < v < hi for lo, v, hi in zip(lower, value_at.values(), upper, strict=True))

    stats = predictor.stats()
    assert stats.points == 39 and stats.series == 3 and stats.forecasts == 30 and stats.malformed == 0
    assert 0 < stats.latency_p50_ms <= stats.latency_p99_ms < 10_000
    predictor.close()
    assert committed_offsets(bus) == {p: o for p, o in bus.end_offsets(TOPIC).items() if o}


def test_restart_resumes_from_committed_offsets(bus, store):
    first = make(bus, store)
    publish_points(bus, TOPIC, minutes(0, 10))
    drain(first)
    first.close()
    publish_points(bus, TOPIC, minutes(10, 6))
    second = make(bus, store)
    drain(second)
    assert second.stats().points == 18  # only the uncommitted tick is read again
    assert second.models["home/power/B"].n_obs_ == 16  # restored from the checkpoint, then updated
    second.close()
    assert committed_offsets(bus) == {p: o for p, o in bus.end_offsets(TOPIC).items() if o}


def test_restart_refills_windows_from_the_lake(bus, store, lake):
    history = minutes(0, 40)
    lake.write("raw", TOPIC, history)
    predictor = make(bus, store, lake=lake)
    publish_points(bus, TOPIC, minutes(39, 2))  # minute 39 is a re-delivery, minute 40 is new
    drain(predictor)
    model = predictor.models["home/power/C"]
    # refilled with the last 30 points before the bus's first (minute 39 is left to the bus),
    # then updated with the message's two
    assert model.n_obs_ == 32
    assert predictor.windows["home/power/C"].ts[0] == T0 + 11 * MIN
    assert predictor.stats().late_points == 0
    origins = store.raw("home/power/C").column("origin_ts").cast("int64").to_pylist()
    assert set(origins) == {T0 + 40 * MIN}  # forecasts right at the first new point
    predictor.close()


def test_malformed_message_is_skipped_quarantined_and_committed(bus, store, lake, caplog):
    predictor = make(bus, store, lake=lake)
    bus.produce(TOPIC, [(b"home/power/A", b"not arrow at all")])
    bus.produce(TOPIC, [(b"home/power/A", encode_arrow(pa.table({"x": [1, 2]})))])
    publish_points(bus, TOPIC, minutes(0, 6))
    with caplog.at_level(logging.WARNING, logger="sparkhu.online.learner"):
        assert drain(predictor) == sum(bus.end_offsets(TOPIC).values())
    assert "skipping malformed message points[" in caplog.text and "not an Arrow IPC stream" in caplog.text
    assert predictor.run_once(timeout=0.05) == 0  # committed past: no infinite loop
    stats = predictor.stats()
    assert stats.malformed == 2 and stats.points == 18 and stats.forecasts == 15
    quarantined = lake.read_quarantine(TOPIC)
    assert quarantined.num_rows == 2
    assert "not arrow at all" in quarantined.column("raw").to_pylist()
    assert quarantined.column("location").to_pylist() == ["offset 0", "offset 1"]
    assert all(r.startswith("not a table of points") for r in quarantined.column("reason").to_pylist())
    predictor.close()


def test_failed_store_write_keeps_offsets_and_is_retried(bus, store, catalog):
    predictor = make(bus, store)
    publish_points(bus, TOPIC, minutes(0, 6))
    with catalog.engine.begin() as conn:  # the prediction store is unavailable for a moment
        conn.exec_driver_sql("ALTER TABLE forecasts_raw RENAME TO forecasts_raw_away")
    with pytest.raises(CatalogError, match="forecasts"):
        drain(predictor)  # the first poll that reads anything fails
    predictor.close()
    assert committed_offsets(bus) == {}  # nothing committed before the forecasts are durable
    with catalog.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE forecasts_raw_away RENAME TO forecasts_raw")
    again = make(bus, store)
    drain(again)
    assert again.stats().forecasts == 15 and store.raw("home/power/A").num_rows == 5
    again.close()
    assert committed_offsets(bus) == {p: o for p, o in bus.end_offsets(TOPIC).items() if o}


def test_pending_forecasts_are_written_by_the_next_poll(bus, store, catalog):
    predictor = make(bus, store)
    publish_points(bus, TOPIC, minutes(0, 6))
    with catalog.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE forecasts_raw RENAME TO forecasts_raw_away")
    with pytest.raises(CatalogError):
        drain(predictor)  # the first poll that reads anything fails
    with catalog.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE forecasts_raw_away RENAME TO forecasts_raw")
    assert predictor.run_once(timeout=0.05) == 0  # retries the pending write, then finds nothing new
    assert predictor.stats().forecasts == 15 and store.raw("home/power/C").num_rows == 5
    predictor.close()
    assert committed_offsets(bus) == {p: o for p, o in bus.end_offsets(TOPIC).items() if o}


def test_run_loop_stops_on_event(bus, store):
    predictor = make(bus, store)
    publish_points(bus, TOPIC, minutes(0, 8))
    stop = threading.Event()
    worker = threading.Thread(target=predictor.run, args=(stop, 0.05))
    worker.start()
    for _ in range(100):
        if predictor.stats().forecasts:
            break
        stop.wait(0.05)
    stop.set()
    worker.join(5)
    assert not worker.is_alive() and predictor.stats().forecasts == 15


def test_hot_swapped_model_is_fitted_on_the_window(bus, store):
    predictor = make(bus, store)
    publish_points(bus, TOPIC, minutes(0, 6))
    drain(predictor)
    predictor.queue_swap("home/power/A", SES(alpha=1.0))
    assert predictor.apply_swaps() == ["home/power/A"]
    assert predictor.models["home/power/A"].forecast(1).tolist() == [5.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"horizon": 0}, "horizon must be a positive integer"),
        ({"step_s": 0}, "step_s must be > 0"),
        ({"alpha": 1.5}, "blending alpha must be in"),
        ({"window": 1}, "window must be an integer >= 2"),
        ({"min_points": 31}, "min_points must be in 1..window=30"),
        ({"model": "prophet"}, "unknown model 'prophet'"),
        ({"model_params": {"alpha": 2.0}}, "alpha must be in"),
    ],
)
def test_bad_settings_rejected(bus, store, kwargs, message):
    with pytest.raises(ForecastError, match=message):
        make(bus, store, **kwargs)


def test_models_of_several_families_forecast_as_each_model_alone(bus, store):
    """SES (the template, in the bank's arrays), seasonal naive (arrays) and NLinear (its own
    object) served side by side: every stored forecast equals the model's own forecast."""
    from sparkhu.forecast.models import make_model

    predictor = make(bus, store, horizon=4)
    rng = np.random.default_rng(3)
    values = {sid: 50 + 10 * np.sin(np.arange(40) / 3) + rng.normal(0, 1, 40) for sid in SERIES}
    history = points(
        np.repeat(SERIES, 20).tolist(),
        np.tile(T0 + np.arange(20) * MIN, 3),
        np.concatenate([values[sid][:20] for sid in SERIES]),
    )
    publish_points(bus, TOPIC, history)
    drain(predictor)
    naive, linear = make_model("seasonal_naive", season_length=6), make_model("nlinear", output=4, lookback=3)
    predictor.queue_swap(SERIES[1], naive, label="naive@v1")
    predictor.queue_swap(SERIES[2], linear, label="nlinear@v1")
    predictor.apply_swaps()
    assert predictor.models.vectorised(SERIES[0]) and predictor.models.vectorised(SERIES[1])
    assert not predictor.models.vectorised(SERIES[2])
    alone = {
        SERIES[0]: SES(alpha=0.5).fit(values[SERIES[0]][:20]),
        SERIES[1]: make_model("seasonal_naive", season_length=6).fit(values[SERIES[1]][:20]),
        SERIES[2]: make_model("nlinear", output=4, lookback=3).fit(values[SERIES[2]][:20]),
    }
    for minute in range(20, 40, 4):  # four minutes per message: several columns per update
        new = points(
            np.repeat(SERIES, 4).tolist(),
            np.tile(T0 + np.arange(minute, minute + 4) * MIN, 3),
            np.concatenate([values[sid][minute : minute + 4] for sid in SERIES]),
        )
        publish_points(bus, TOPIC, new)
        drain(predictor)
        origin = T0 + (minute + 3) * MIN
        for sid, model in alone.items():
            model.update(values[sid][minute : minute + 4])
            raw = store.raw(sid)
            raw = raw.filter(pa.compute.equal(raw.column("origin_ts").cast("int64"), origin))
            np.testing.assert_allclose(raw.column("value").to_numpy(), model.forecast(4), rtol=1e-9)
            lower, _ = model.forecast_interval(4)
            np.testing.assert_allclose(raw.column("lower").to_numpy(), lower, rtol=1e-9)
    predictor.close()
