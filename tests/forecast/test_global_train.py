"""One global model over many series: scored per series on held-out slots, registered once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sparkhu.demo.generator import generate
from sparkhu.errors import ForecastError, NotFoundError
from sparkhu.forecast.global_train import train_global
from sparkhu.forecast.registry import ModelRegistry
from sparkhu.forecast.train import TrainConfig
from sparkhu.metadata.lineage import lineage
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog, SeriesInfo
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import PredictionStore

DATASET = "ampds2_electricity"
CONFIG = TrainConfig(horizon=20, season_length=60, max_points=1440)


def test_global_nlinear_is_registered_once_and_forecasts_every_series(tmp_path: Path):
    data = generate(days=2, meters=10, seed=5, start=datetime(2024, 5, 1, tzinfo=UTC), defects=False)
    lake = Lake(tmp_path.joinpath("lake").as_uri())
    lake.write("raw", DATASET, data.points)
    with Catalog(f"sqlite:///{tmp_path}/catalog.db") as catalog:
        registry = ModelRegistry(
            f"sqlite:///{tmp_path}/mlflow.db", artifact_root=tmp_path / "art", catalog=catalog
        )
        store = PredictionStore(catalog)
        summary = train_global(
            lake, catalog, store, registry, dataset=DATASET, model="nlinear", config=CONFIG
        )
        assert len(summary.results) == 11  # WHE and ten sub-meters
        assert all(r.status == "trained" and r.champion == "global-nlinear" for r in summary.results)
        assert all(r.score is not None and r.score > 0 for r in summary.results)
        assert {r.version for r in summary.results} == {1}  # one registered model, not eleven
        assert registry.aliases("nlinear") == {"champion": 1}
        for r in summary.results:
            raw = store.raw(r.series_id)
            assert raw.num_rows == CONFIG.horizon
            assert set(raw.column("model").to_pylist()) == {"global-nlinear@v1"}
        runs = catalog.runs(kind="train")
        assert runs[0].name == "global/nlinear" and runs[0].status == "success"
        # the one version is in the lineage of every series it was trained on, with its run and forecasts
        for sid in (summary.results[0].series_id, summary.results[-1].series_id):
            catalog.upsert_series(SeriesInfo.of(sid))
            graph = lineage(catalog, sid)
            [model] = graph.of_kind("model")
            [train] = graph.of_kind("train")
            [forecast] = graph.of_kind("forecast")
            edges = {(e.source, e.target, e.relation) for e in graph.edges}
            assert model.id == "model:sparkhu.global.nlinear/1"
            assert (train.id, model.id, "registers") in edges
            assert (model.id, forecast.id, "forecasts") in edges
            assert train.detail["run_id"] == runs[0].run_id


def test_global_model_learns_a_shared_shape_better_than_seasonal_naive(tmp_path: Path):
    # 30 series sharing one noisy 60-slot cycle at different phases and levels: the pooled fit
    # must beat seasonal naive (held-out MASE < 1 on its seasonal scale) on most of them.
    rng = np.random.default_rng(0)
    n, start_us = 1440, int(datetime(2024, 5, 1, tzinfo=UTC).timestamp()) * 1_000_000
    ts = start_us + np.arange(n, dtype="int64") * 60_000_000
    tables = []
    for i in range(30):
        cycle = np.sin(2 * np.pi * (np.arange(n) + rng.integers(60)) / 60)
        tables.append(points(f"synth/shape/s{i:02d}", ts, 10 * i + 5 * cycle + rng.normal(0, 0.5, n)))
    lake = Lake(tmp_path.joinpath("lake").as_uri())
    lake.write("raw", "synth_shape", pa.concat_tables(tables))
    with Catalog(f"sqlite:///{tmp_path}/catalog.db") as catalog:
        registry = ModelRegistry(
            f"sqlite:///{tmp_path}/mlflow.db", artifact_root=tmp_path / "art", catalog=catalog
        )
        summary = train_global(
            lake,
            catalog,
            PredictionStore(catalog),
            registry,
            dataset="synth_shape",
            model="nlinear",
            config=CONFIG,
        )
    scores = np.array([r.score for r in summary.results])
    assert len(scores) == 30 and float(np.median(scores)) < 1.0 and (scores < 1.0).mean() >= 0.8


def test_global_training_bad_input(tmp_path: Path):
    lake = Lake(tmp_path.joinpath("lake").as_uri())
    with Catalog(f"sqlite:///{tmp_path}/catalog.db") as catalog:
        store = PredictionStore(catalog)
        with pytest.raises(ForecastError, match="global model 'prophet'"):
            train_global(lake, catalog, store, None, dataset=DATASET, model="prophet")
        with pytest.raises(NotFoundError, match="not in the lake"):
            train_global(lake, catalog, store, None, dataset=DATASET)
