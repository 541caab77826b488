"""The runtime opens each backend on first use, once, and closes what it opened; commands open only theirs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparkhu.app import training
from sparkhu.app.runtime import Runtime
from sparkhu.config import Settings
from sparkhu.errors import BusError, ConfigError
from sparkhu.forecast.train import TrainConfig
from sparkhu.series import points

MINUTE = 60_000_000
T0 = 1_700_000_000 * 1_000_000


def _settings(home: Path, **env: str) -> Settings:
    return Settings.load(toml_path=None, env={"SPARKHU_HOME": str(home), **env})


def test_backends_open_once_on_first_use_and_close(tmp_path: Path) -> None:
    runtime = Runtime(_settings(tmp_path))
    assert runtime.opened() == []
    assert runtime.predictions is runtime.predictions
    assert runtime.opened() == ["catalog", "predictions"]
    bus = runtime.bus
    runtime.close()
    assert runtime.opened() == []
    with pytest.raises(BusError, match="closed"):
        bus.create_topic("t")


def test_training_never_opens_the_bus(tmp_path: Path) -> None:
    # An unreachable broker: opening the bus would fail the command.
    settings = _settings(tmp_path, SPARKHU_BUS__URI="kafka://127.0.0.1:1", SPARKHU_ENGINE__WORKERS="1")
    n = 300
    wave = 50 + 10 * np.sin(np.arange(n) / 10)
    with Runtime(settings) as runtime:
        runtime.lake.write("raw", "home_power", points("home/power/P", T0 + np.arange(n) * MINUTE, wave))
        config = TrainConfig(horizon=5, season_length=60, portfolio=("seasonal_naive", "ses"), windows=2)
        summary = training.train(runtime, runtime.resolve_dataset(None), config)
        assert [r.series_id for r in summary.results] == ["home/power/P"]
        assert "bus" not in runtime.opened()
        assert set(runtime.opened()) == {"lake", "catalog", "predictions", "registry", "engine"}


def test_resolve_dataset_names_the_choices(tmp_path: Path) -> None:
    with Runtime(_settings(tmp_path)) as runtime:
        with pytest.raises(ConfigError, match=r"--dataset: .*none yet: ingest some data first"):
            runtime.resolve_dataset(None)
        for dataset in ("a_b", "c_d"):
            runtime.lake.write("raw", dataset, points("a/b/c", [0], [1.0]))
        with pytest.raises(
            ConfigError, match=r"--dataset: name one of the datasets of the lake's raw zone \(a_b, c_d\)"
        ):
            runtime.resolve_dataset(None)
        assert runtime.resolve_dataset("c_d") == "c_d"
