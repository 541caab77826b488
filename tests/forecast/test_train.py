"""Batch training end to end: demo data in a real lake, SQLite catalog, MLflow on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sparkhu.demo.generator import generate
from sparkhu.engine.local import LocalEngine
from sparkhu.errors import ForecastError, NotFoundError
from sparkhu.forecast.registry import ModelRegistry
from sparkhu.forecast.train import TrainConfig, TrainSummary, train_series
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import PredictionStore

DATASET = "ampds2_electricity"
START = datetime(2024, 3, 1, tzinfo=UTC)
REAL = ["ampds2/electricity/WHE.P", "ampds2/electricity/FRE.P", "ampds2/electricity/HPE.P"]
CONFIG = TrainConfig(horizon=20, season_length=1440, windows=2)


@dataclass
class Env:
    lake: Lake
    catalog: Catalog
    predictions: PredictionStore
    registry: ModelRegistry
    summary: TrainSummary


def _defective(start_us: int) -> pa.Table:
    minute = 60_000_000
    n = 3 * 1440
    ts = start_us + np.arange(n) * minute
    gappy = ts[np.random.default_rng(1).random(n) < 0.2]
    return pa.concat_tables(
        [
            points("ampds2/electricity/CONST.P", ts, np.full(n, 5.0)),
            points("ampds2/electricity/SHORT.P", ts[:100], np.arange(100.0)),
            points("ampds2/electricity/GAPPY.P", gappy, np.sin(np.arange(gappy.size) / 10.0)),
        ]
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp: Path = tmp_path_factory.mktemp("train")
    data = generate(days=3, meters=10, seed=7, start=START, defects=False).points
    ids = data.column("series_id").cast(pa.string())
    real = data.filter(pc.is_in(ids, pa.array(REAL)))
    lake = Lake(tmp.joinpath("lake").as_uri())
    lake.write("raw", DATASET, real)
    lake.write("raw", DATASET, _defective(int(START.timestamp()) * 1_000_000))
    with Catalog(f"sqlite:///{tmp}/catalog.db") as catalog:
        registry = ModelRegistry(f"sqlite:///{tmp}/mlflow.db", artifact_root=tmp / "art", catalog=catalog)
        store = PredictionStore(catalog)
        with LocalEngine(2, min_rows_for_pool=0) as engine:
            summary = train_series(
                lake, catalog, store, registry, dataset=DATASET, config=CONFIG, engine=engine
            )
        yield Env(lake, catalog, store, registry, summary)


def test_real_series_get_a_backtested_champion_registered_and_forecasts_with_intervals(env: Env) -> None:
    results = {r.series_id: r for r in env.summary.results}
    assert env.summary.zone == "raw"
    for sid in REAL:
        result = results[sid]
        assert result.status == "trained", result
        assert result.champion in CONFIG.portfolio and result.runner_up in CONFIG.portfolio
        assert result.score is not None and 0 < result.score <= result.runner_up_score
        assert env.registry.aliases(sid) == {"champion": result.version}
        raw = env.predictions.raw(sid)
        assert raw.num_rows == CONFIG.horizon == result.forecasts
        assert set(raw.column("model").to_pylist()) == {f"{result.champion}@v{result.version}"}
        value, lower, upper = (raw.column(c).to_numpy() for c in ("value", "lower", "upper"))
        assert np.all(lower < value) and np.all(value < upper)
        steps = np.diff(raw.column("target_ts").cast(pa.int64()).to_numpy())
        assert set(steps.tolist()) == {60_000_000}
        assert env.predictions.blended(sid).num_rows == CONFIG.horizon
    loaded = env.registry.load(REAL[0])
    assert loaded.name == results[REAL[0]].champion and loaded.width is not None


def test_bad_series_fall_back_to_naive_with_the_reason(env: Env) -> None:
    results = {r.series_id: r for r in env.summary.results}
    expected = {
        "ampds2/electricity/CONST.P": "constant series",
        "ampds2/electricity/SHORT.P": "too short: 100 observed points",
        "ampds2/electricity/GAPPY.P": "mostly missing",
    }
    for sid, reason in expected.items():
        result = results[sid]
        assert (result.status, result.champion) == ("fallback", "naive"), result
        assert reason in (result.reason or "")
        assert env.predictions.raw(sid).num_rows == CONFIG.horizon
        params = env.registry._client.get_run(result.run_id).data.params
        assert reason in params["fallback_reason"]
    const = env.predictions.raw("ampds2/electricity/CONST.P").column("value").to_pylist()
    assert const == [5.0] * CONFIG.horizon


def test_run_is_recorded_in_the_catalog(env: Env) -> None:
    (run,) = env.catalog.runs(kind="train")
    assert (run.status, run.run_id, run.rows_out) == ("success", env.summary.run_id, 6 * CONFIG.horizon)
    assert len(env.catalog.models()) == 6


def test_a_series_with_no_point_in_range_is_a_recorded_failure(env: Env) -> None:
    late = datetime(2030, 1, 1, tzinfo=UTC)
    summary = train_series(
        env.lake,
        env.catalog,
        env.predictions,
        env.registry,
        [REAL[0]],
        dataset=DATASET,
        start=late,
        config=CONFIG,
    )
    (result,) = summary.results
    assert (result.status, result.reason) == ("failed", "no points in the requested range")


def test_malformed_requests(env: Env) -> None:
    args = (env.lake, env.catalog, env.predictions, env.registry)
    with pytest.raises(
        NotFoundError, match=r"series ampds2/electricity/NOPE\.P not in raw/ampds2_electricity"
    ):
        train_series(*args, ["ampds2/electricity/NOPE.P"], dataset=DATASET)
    with pytest.raises(NotFoundError, match="dataset 'nope' is not in the lake"):
        train_series(*args, dataset="nope")
    with pytest.raises(NotFoundError, match="no series of raw/ampds2_electricity starts with 'zzz'"):
        train_series(*args, dataset=DATASET, prefix="zzz")
    with pytest.raises(ForecastError, match=r"unknown model\(s\) 'prophet'.*known models: .*seasonal_naive"):
        TrainConfig(portfolio=("ses", "prophet"))
    with pytest.raises(ForecastError, match="horizon must be a positive integer"):
        TrainConfig(horizon=0)
