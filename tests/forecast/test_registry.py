"""The model registry on a real MLflow SQLite store: round trip, aliases, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow.entities.model_registry import ModelVersion

from sparkhu.errors import BackendUnavailable, ConfigError, ForecastError, NotFoundError
from sparkhu.forecast.models import make_model
from sparkhu.forecast.registry import ModelRegistry, registered_name
from sparkhu.forecast.train import Calibrated
from sparkhu.storage.catalog import Catalog

Y = 100.0 + 10.0 * np.sin(np.arange(200) / 5.0)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="module")
def catalog(store: Path) -> Catalog:
    with Catalog(f"sqlite:///{store}/catalog.db") as cat:
        yield cat


@pytest.fixture(scope="module")
def registry(store: Path, catalog: Catalog) -> ModelRegistry:
    return ModelRegistry(f"sqlite:///{store}/mlflow.db", artifact_root=store / "art", catalog=catalog)


def test_round_trip_in_a_new_process_gives_the_same_numbers(registry: ModelRegistry, store: Path) -> None:
    model = Calibrated(make_model("seasonal_naive", season_length=7).fit(Y), width=[2.5], coverage=0.9)
    done = registry.log_training(
        "test/rt/a", model, metrics={"mase": 0.8}, alias="champion", meta={"period_s": 60.0, "last_ts_us": 5}
    )
    assert (done.name, done.version) == ("sparkhu.test.rt.a", 1)
    expected = model.forecast(10)
    script = f"""
import json, warnings
warnings.simplefilter("error")
from sparkhu.forecast.registry import ModelRegistry
reg = ModelRegistry("sqlite:///{store}/mlflow.db", artifact_root="{store}/art")
served = reg.served("test/rt/a")
low, high = served.forecaster.forecast_interval(10, 0.9)
print(json.dumps({{"values": served.forecaster.forecast(10).tolist(), "low": low.tolist(),
                  "label": served.label, "period": served.period_s, "last": served.last_ts_us}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_array_equal(got["values"], expected)
    np.testing.assert_allclose(got["low"], expected - 2.5)
    assert (got["label"], got["period"], got["last"]) == ("seasonal_naive@v1", 60.0, 5)
    # a fresh registry object in this process, and MLflow's own pyfunc face
    fresh = ModelRegistry(registry.uri, artifact_root=store / "art")
    np.testing.assert_array_equal(fresh.load("sparkhu.test.rt.a", "champion").forecast(10), expected)


def test_promote_moves_champion_and_keeps_previous(registry: ModelRegistry) -> None:
    first = registry.log_training("test/pr/b", make_model("ses", alpha=0.5).fit(Y), alias="champion")
    second = registry.log_training("test/pr/b", make_model("ses", alpha=0.9).fit(Y))  # challenger
    assert registry.aliases("test/pr/b") == {"champion": first.version, "challenger": second.version}
    assert registry.promote("test/pr/b", "challenger") == second.version
    assert registry.aliases("test/pr/b") == {"champion": second.version, "previous": first.version}
    assert registry.load("test/pr/b").params == {"alpha": 0.9}
    registry.promote("test/pr/b", "previous")  # rollback
    assert registry.aliases("test/pr/b") == {"champion": first.version, "previous": second.version}
    assert registry.champions(["test/pr/b"]) == {"sparkhu.test.pr.b": first.version}


def test_versions_and_catalog_record_metrics(registry: ModelRegistry, catalog: Catalog) -> None:
    registry.log_training("test/vc/c", make_model("ses").fit(Y), metrics={"mase": 0.7, "rmse": 1.5})
    (info,) = registry.versions("test/vc/c")
    assert (info.aliases, info.series_id, info.model, info.metrics["mase"]) == (
        ("challenger",),
        "test/vc/c",
        "ses",
        0.7,
    )
    (row,) = catalog.models(series_id="test/vc/c")
    assert (row["name"], row["version"], row["uri"], row["metrics"]) == (
        "sparkhu.test.vc.c",
        "1",
        "models:/sparkhu.test.vc.c/1",
        {"mase": 0.7, "rmse": 1.5},
    )
    assert not any(p.name == "mlruns" for p in Path.cwd().iterdir())


def test_unknown_models_and_aliases_are_not_found(registry: ModelRegistry) -> None:
    with pytest.raises(NotFoundError, match=r"sparkhu\.no\.such\.model"):
        registry.load("no/such/model")
    registry.log_training("test/nf/d", make_model("ses").fit(Y), alias=None)
    with pytest.raises(NotFoundError, match="alias champion"):
        registry.load("test/nf/d")
    with pytest.raises(NotFoundError, match="no alias 'challenger'"):
        registry.promote("test/nf/d", "challenger")
    with pytest.raises(NotFoundError, match=r"test\.nf\.d"):
        registry.promote("test/nf/d", 99)


def test_bad_arguments_raise_forecast_errors(registry: ModelRegistry) -> None:
    with pytest.raises(ForecastError, match="needs a fitted Forecaster"):
        registry.log_training("test/bad/e", make_model("ses"))
    with pytest.raises(ForecastError, match="alias must be"):
        registry.log_training("test/bad/e", make_model("ses").fit(Y), alias="best")
    with pytest.raises(ForecastError, match="neither a series id"):
        registered_name("a/b")


def test_a_version_without_an_artifact_location_is_a_forecast_error(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = ModelVersion("sparkhu.test.bare.f", "3", 0, source=None)  # MLflow allows a version without one
    monkeypatch.setattr(registry._client, "get_model_version", lambda name, version: bare)
    with pytest.raises(ForecastError, match=r"sparkhu\.test\.bare\.f version 3 names no artifact location"):
        registry.served("test/bare/f", alias=None, version=3)


def test_unreachable_or_malformed_tracking_uris(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1:9.*no MLflow tracking server"):
        ModelRegistry("http://127.0.0.1:9", connect_timeout_s=0.5)
    with pytest.raises(BackendUnavailable, match="does not exist; create it first"):
        ModelRegistry(f"sqlite:///{tmp_path}/missing/mlflow.db")
    with pytest.raises(ConfigError, match="'ftp://x' is not a tracking URI"):
        ModelRegistry("ftp://x")
