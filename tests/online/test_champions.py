"""Champions served online: the online predictor hot-swaps a newly promoted champion (real bus and store)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sparkhu.errors import ForecastError
from sparkhu.forecast.models import make_model
from sparkhu.forecast.registry import ModelRegistry
from sparkhu.online.champions import ChampionServer
from sparkhu.online.learner import OnlinePredictor
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.predictions import PredictionStore
from sparkhu.stream.codecs import publish_points
from sparkhu.stream.sqlite import SqliteBus

SID = "home/power/P"
MINUTE = 60_000_000
T0 = 1_700_000_000 * 1_000_000


@dataclass
class Env:
    tmp: Path
    bus: SqliteBus
    store: PredictionStore
    registry: ModelRegistry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    tmp = tmp_path_factory.mktemp("serving")
    return ModelRegistry(f"sqlite:///{tmp}/mlflow.db", artifact_root=tmp / "art")


@pytest.fixture
def env(tmp_path: Path, registry: ModelRegistry) -> Iterator[Env]:
    with SqliteBus(f"sqlite:///{tmp_path}/bus.db") as bus, Catalog(f"sqlite:///{tmp_path}/c.db") as cat:
        yield Env(tmp_path, bus, PredictionStore(cat), registry)


def _publish(bus: SqliteBus, start: int, values: list[float]) -> None:
    ts = T0 + (start + np.arange(len(values))) * MINUTE
    publish_points(bus, "points", points(SID, ts, values))


def _models_of_latest_origin(store: PredictionStore) -> set[str]:
    raw = store.raw(SID)
    latest = max(raw.column("origin_ts").to_pylist())
    pairs = zip(raw.column("model").to_pylist(), raw.column("origin_ts").to_pylist(), strict=True)
    return {m for m, o in pairs if o == latest}


def test_online_predictor_hot_swaps_promoted_champions(env: Env) -> None:
    online = OnlinePredictor(env.bus, "points", env.store, horizon=3, min_points=2, window=10)
    server = ChampionServer(env.registry, online, series=[SID], poll_s=0.05)
    _publish(env.bus, 0, [1.0, 2.0, 3.0, 4.0])
    assert online.run_once(timeout=1.0) == 1
    assert _models_of_latest_origin(env.store) == {"ses"}
    # v1: seasonal naive trained up to minute 1; the server updates it with minutes 2-3
    trained = make_model("seasonal_naive", season_length=2).fit(np.array([1.0, 2.0]))
    meta = {"period_s": 60.0, "last_ts_us": T0 + MINUTE}
    v1 = env.registry.log_training(SID, trained, alias="champion", meta=meta).version
    assert server.sync() == [SID] and server.serving == {SID: v1}
    assert server.sync() == []
    assert online.apply_swaps() == [SID]  # the predictor's own thread installs the queued champion
    assert online.models[SID].forecast(2).tolist() == [3.0, 4.0]  # brought up to date with the window
    _publish(env.bus, 4, [5.0])
    online.run_once(timeout=1.0)
    assert _models_of_latest_origin(env.store) == {f"seasonal_naive@v{v1}"}
    lower, upper = env.store.raw(SID).column("lower"), env.store.raw(SID).column("upper")
    assert lower.null_count == 0 and upper.null_count == 0
    # v2 registered as challenger, promoted while the server polls in its own thread
    v2 = env.registry.log_training(
        SID, make_model("ses", alpha=0.5).fit(np.arange(1.0, 6.0)), meta=meta
    ).version
    stop = threading.Event()
    thread = threading.Thread(target=server.run, args=(stop,))
    thread.start()
    try:
        env.registry.promote(SID, "challenger")
        deadline = time.monotonic() + 10
        while server.serving.get(SID) != v2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    assert server.serving == {SID: v2} and server.swaps == 2
    _publish(env.bus, 5, [6.0])
    online.run_once(timeout=1.0)  # installs v2 first, then forecasts with it
    assert _models_of_latest_origin(env.store) == {f"ses@v{v2}"}
    assert online.stats().swaps == 2
    online.close()


def test_the_server_thread_only_queues_the_predictor_installs(env: Env) -> None:
    online = OnlinePredictor(env.bus, "points", env.store, horizon=3, min_points=2, window=10)
    _publish(env.bus, 0, [1.0, 2.0, 3.0, 4.0])
    online.run_once(timeout=1.0)
    fitted = online.models[SID]
    meta = {"period_s": 60.0, "last_ts_us": T0 + 3 * MINUTE}
    model = make_model("seasonal_naive", season_length=1).fit(np.arange(1.0, 5.0))
    env.registry.log_training(SID, model, alias="champion", meta=meta)
    server = ChampionServer(env.registry, online, poll_s=0.05)  # every series the predictor knows
    worker = threading.Thread(target=server.sync)
    worker.start()
    worker.join()
    assert server.serving and server.swaps == 1
    assert online.models[SID] is fitted and online.stats().swaps == 0  # untouched by the server's thread
    _publish(env.bus, 4, [9.0])
    online.run_once(timeout=1.0)
    assert online.models[SID] is not fitted and online.stats().swaps == 1
    assert _models_of_latest_origin(env.store) == {f"seasonal_naive@v{server.serving[SID]}"}
    assert online.models[SID].forecast(1).tolist() == [9.0]
    online.close()


def test_a_champion_trained_at_another_period_is_not_served(env: Env) -> None:
    sid = "home/power/Q"
    online = OnlinePredictor(env.bus, "points", env.store, horizon=3, min_points=2, step_s=60)
    publish_points(env.bus, "points", points(sid, [T0, T0 + MINUTE], [1.0, 2.0]))
    online.run_once(timeout=1.0)
    model = make_model("ses").fit(np.arange(5.0))
    env.registry.log_training(sid, model, alias="champion", meta={"period_s": 900.0})
    server = ChampionServer(env.registry, online)
    assert server.sync() == [] and server.serving == {}
    online.close()


def test_bad_poll_interval_rejected(env: Env) -> None:
    with pytest.raises(ForecastError, match="poll_s must be > 0"):
        ChampionServer(env.registry, OnlinePredictor(env.bus, "points", env.store), poll_s=0)


def test_a_champion_is_served_only_the_feature_view_it_was_trained_on(env: Env, caplog) -> None:
    from sparkhu.metadata.features import FeatureView, apply_view

    online = OnlinePredictor(env.bus, "points", env.store, horizon=3, min_points=2, step_s=60)
    sids = ["home/power/V1", "home/power/V2", "home/power/V3"]
    publish_points(env.bus, "points", points(sids, [T0, T0, T0], [1.0, 2.0, 3.0]))
    online.run_once(timeout=1.0)
    catalog = Catalog(f"sqlite:///{env.tmp}/c.db")
    views = {  # what each series' champion was trained on
        sids[0]: FeatureView(name="v1", dataset="points", series=[sids[0]], window=10),
        sids[1]: FeatureView(name="v2", dataset="points", series=[sids[1]], normalisation="pipeline"),
        sids[2]: FeatureView(name="v3", dataset="points", series=[sids[0]]),  # not its series
    }
    for sid, view in views.items():
        apply_view(catalog, view)
        done = env.registry.log_training(sid, make_model("ses").fit(np.arange(5.0)), alias="champion")
        catalog.register_model(done.name, str(done.version), sid, "models:/x", {}, run_id=f"run-{sid}")
        catalog.link_feature_view(f"run-{sid}", view.name, 1)
    server = ChampionServer(env.registry, online, catalog=catalog)
    with caplog.at_level("WARNING", logger="sparkhu.online.champions"):
        assert server.sync() == [sids[0]]
    refused = "\n".join(caplog.messages)
    assert "trained on feature view 'v2' v1, which reads the pipeline's normalised values" in refused
    assert "trained on feature view 'v3' v1, which does not hold home/power/V3" in refused
    online.close()
    catalog.close()
