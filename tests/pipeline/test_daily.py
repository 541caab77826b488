"""The daily DAG: the 13 tasks wired per docs/pipeline.md, run end to end on a small lake."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from sparkhu.config import PipelineSettings
from sparkhu.engine.local import LocalEngine
from sparkhu.errors import PipelineError
from sparkhu.pipeline.daily import SAMPLING, WIRING, daily_dag, daily_runner
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog, SeriesInfo
from sparkhu.storage.lake import Lake

D = "house_power"
DAY0 = date(2024, 1, 1)
T0_US = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1e6)


def test_wiring_matches_the_table() -> None:
    dag = daily_dag()
    assert len(dag.tasks) == 13 == len(WIRING)
    assert [t.name for t in dag.levels[0]] == ["validate"]
    assert dag.upstream(dag.task("handle")) == ["anomalies", "decompose", "impute"]
    assert "regularity" in dag.upstream(dag.task("missing"))  # the period it needs is metadata
    assert dag.task("regularity").lookback == timedelta(days=60)
    assert dag.task("correlation").scope == "all"


def test_overrides_lookbacks_and_exclusions() -> None:
    dag = daily_dag(outliers={"k": 3.0}, lookback={"impute": timedelta(days=2)}, exclude=["anomalies"])
    assert dag.task("outliers").params == {"k": 3.0}
    assert dag.task("impute").lookback == timedelta(days=2)
    names = {t.name for t in dag.tasks}
    assert "anomalies" not in names and "handle" not in names and "correlation" not in names
    assert "decompose" in names


def test_tasks_are_wired_as_functions_and_the_period_as_a_metadata_dataset() -> None:
    from sparkhu.pipeline.tasks import missing, regularity

    dag = daily_dag()
    assert dag.task("regularity").fn is regularity.analyse and dag.task("missing").fn is missing.detect
    assert all(callable(spec.fn) for spec in WIRING)
    assert dag.producer[SAMPLING] == "regularity" and SAMPLING not in dag.sources
    readers = {t.name for t in dag.tasks if SAMPLING in t.meta_inputs}
    assert readers == {"missing", "impute", "decompose", "windows"}
    assert all("regularity" in dag.upstream(dag.task(name)) for name in readers)


def test_excluding_regularity_leaves_its_readers_on_the_catalogs_period() -> None:
    dag = daily_dag(exclude=["regularity"])
    names = {t.name for t in dag.tasks}
    assert "regularity" not in names and {"missing", "impute", "decompose", "windows"} <= names
    assert SAMPLING in dag.sources and "regularity" not in dag.upstream(dag.task("missing"))


def test_unknown_task_in_overrides_is_rejected() -> None:
    with pytest.raises(PipelineError, match="no task 'clean_up' in the daily DAG"):
        daily_dag(clean_up={"x": 1})
    with pytest.raises(PipelineError, match="look-back of task 'impute' must be a non-negative"):
        daily_dag(lookback={"impute": -5})


def test_the_whole_dag_runs_on_two_days_of_three_meters(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    rng = np.random.default_rng(3)
    minutes = np.arange(2 * 1440)
    ids, ts, values = [], [], []
    for k, name in enumerate(["a/m/P", "a/n/P", "a/o/P"]):
        catalog.upsert_series(SeriesInfo.of(name, unit="W", value_min=0.0, value_max=10_000.0))
        v = 500 + 100 * k + 200 * np.sin(2 * np.pi * minutes / 1440) + rng.normal(0, 5, len(minutes))
        v[100] = 9_000.0  # a spike
        keep = np.ones(len(minutes), bool)
        keep[600:620] = False  # a gap
        ids += [name] * int(keep.sum())
        ts.append(T0_US + minutes[keep] * 60_000_000)
        values.append(v[keep])
    lake.write("raw", D, points(ids, np.concatenate(ts), np.concatenate(values)))
    with LocalEngine(1) as engine:
        runner = daily_runner(lake, catalog, engine, D, settings=PipelineSettings(retries=0), home=tmp_path)
        summary = runner.run(DAY0, DAY0 + timedelta(days=1))
    failed = [(r.task, r.error) for r in summary.runs if r.status != "success"]
    assert failed == []
    assert len(summary.runs) == 26
    assert lake.read("clean", D).num_rows == 3 * 2 * 1440  # gap imputed, spike handled
    assert lake.read("clean", D)["value"].to_numpy().max() < 9_000.0
    assert catalog.series("a/m/P").period_s == 60.0
    for name in ("stats", "regularity", "missing", "decomposition", "correlation"):
        assert lake.read_table("analysis", f"{D}.{name}").num_rows > 0, name
    assert lake.read_table("features", f"{D}.windows").num_rows > 0
    assert (tmp_path / "reports" / D / "2024-01-02" / "index.html").exists()
    assert runner.missing_days(DAY0 + timedelta(days=1)) == []
    catalog.close()
