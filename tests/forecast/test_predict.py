"""One-off forecasts: ``predict_series`` brings a champion up to date and stores its forecasts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sparkhu.errors import NotFoundError
from sparkhu.forecast.models import make_model
from sparkhu.forecast.predict import predict_series
from sparkhu.forecast.registry import ModelRegistry
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import PredictionStore

MINUTE = 60_000_000
T0 = 1_700_000_000 * 1_000_000


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(f"sqlite:///{tmp_path}/mlflow.db", artifact_root=tmp_path / "art")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PredictionStore]:
    with Catalog(f"sqlite:///{tmp_path}/c.db") as cat:
        yield PredictionStore(cat)


def test_predict_series_and_bad_input(
    tmp_path: Path, store: PredictionStore, registry: ModelRegistry
) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    lake.write("raw", "home_power", points("home/power/R", T0 + np.arange(6) * MINUTE, np.arange(6.0)))
    meta = {"period_s": 60.0, "last_ts_us": T0 + 3 * MINUTE}
    model = make_model("seasonal_naive", season_length=1).fit(np.arange(4.0))
    version = registry.log_training("home/power/R", model, alias="champion", meta=meta).version
    table = predict_series(lake, store, registry, "home/power/R", dataset="home_power", horizon=2)
    assert table.column("value").to_pylist() == [5.0, 5.0]  # updated with minutes 4 and 5
    assert table.column("model").to_pylist() == [f"seasonal_naive@v{version}"] * 2
    assert store.raw("home/power/R").num_rows == 2
    with pytest.raises(NotFoundError, match=r"sparkhu\.home\.power\.S"):
        predict_series(lake, store, registry, "home/power/S", dataset="home_power")
