"""A small live platform the controller's tests share: one home (lake, catalog, registry, bus) per
module, one topic, predictor and champion server per test, the points written to the lake (as the
lake sink would) and published one message per point (one forecast origin each)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sparkhu.app.runtime import Runtime
from sparkhu.config import Settings, TrainingPolicy
from sparkhu.control.controller import Controller
from sparkhu.control.evidence import StoreEvidence
from sparkhu.forecast.base import Forecaster
from sparkhu.online.champions import ChampionServer
from sparkhu.online.learner import OnlinePredictor
from sparkhu.series import points
from sparkhu.stream.codecs import publish_points

T0 = 1_700_000_000 * 1_000_000
MINUTE = 60_000_000


def home_settings(home: Path) -> Settings:
    return Settings.load(
        toml_path=None,
        env={},
        overrides={"home": str(home), "forecast.season_length": 2, "forecast.horizon": 3},
    )


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with Runtime(home_settings(tmp_path_factory.mktemp("control"))) as rt:
        _ = rt.registry  # MLflow creates its database once per module (several seconds)
        yield rt


@dataclass
class Live:
    """One series on its own topic, served online, governed by one policy."""

    runtime: Runtime
    series_id: str
    topic: str
    predictor: OnlinePredictor
    server: ChampionServer
    controller: Controller
    policy: TrainingPolicy
    minute: int = 0

    def feed(self, values: Sequence[float]) -> None:
        """Land and publish ``values`` one minute apart, then let the predictor take them all."""
        ts = T0 + (self.minute + np.arange(len(values))) * MINUTE
        self.minute += len(values)
        table = points(self.series_id, ts, list(values))
        self.runtime.lake.write("raw", self.topic, table)
        for i in range(table.num_rows):
            publish_points(self.runtime.bus, self.topic, table.slice(i, 1))
        while self.predictor.run_once(timeout=0.5):
            pass

    def register(self, model: Forecaster, alias: str) -> int:
        """Register ``model`` (fitted on the points fed so far) as the registry's ``alias``."""
        meta = {"period_s": 60.0, "last_ts_us": T0 + (self.minute - 1) * MINUTE}
        return self.runtime.registry.log_training(
            self.series_id, model, alias=alias, meta=meta, metrics={"mase": 1.0}
        ).version

    def serve(self) -> None:
        """The champion server's poll, then the predictor's next round installs what it queued."""
        self.server.sync()
        self.predictor.apply_swaps()
        self.predictor.apply_shadows()

    def step(self) -> list[tuple[int, str]]:
        moved = self.controller.step()
        self.predictor.apply_shadows()
        return moved


def make_live(runtime: Runtime, name: str, policies: Sequence[TrainingPolicy]) -> Live:
    """The live series ``ctl/<name>/P``; its controller sees every policy of ``policies`` (the catalog's
    cycles of the other tests' series too, as one controller of a home would)."""
    series_id = f"ctl/{name}/P"
    topic = f"ctl_{name}"
    runtime.bus.create_topic(topic)
    predictor = OnlinePredictor(
        runtime.bus, topic, runtime.predictions, horizon=3, window=20, min_points=2, dataset=topic
    )
    server = ChampionServer(runtime.registry, predictor, series=[series_id], poll_s=1.0)
    controller = Controller(
        runtime.catalog,
        runtime.registry,
        StoreEvidence(runtime.predictions, runtime.lake),
        policies=lambda: policies,
        retrain=lambda sid, p: _retrain(runtime, sid, p),
        series=lambda: predictor.known_series(),
        predictor_of=lambda sid: predictor if sid == series_id else None,
        scan_s=0.0,
    )
    policy = next(p for p in policies if p.series == f"ctl/{name}/*")
    return Live(runtime, series_id, topic, predictor, server, controller, policy)


def _retrain(runtime: Runtime, series_id: str, policy: TrainingPolicy) -> int:
    from sparkhu.app.control import retrain_challenger

    return retrain_challenger(runtime, series_id, policy)
