"""The generated DAGs on real Airflow (its own virtualenv, SQLite metadata): they import without
errors or sparkhu in well under a second, mirror the pipeline's graph, and ``dag.test()`` of a day
leaves the lake as ``sparkhu pipeline run`` of that day does; a failing task fails its Airflow task."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from tests.orchestrate.conftest import DATASET, DAY, SPARKHU, sparkhu

from sparkhu.app import pipelines
from sparkhu.app.runtime import Runtime
from sparkhu.config import Settings
from sparkhu.orchestrate.generate import generate
from sparkhu.orchestrate.pipeline import TASK_GROUPS
from sparkhu.pipeline.daily import daily_dag
from sparkhu.storage.lake import Lake

pytestmark = pytest.mark.slow
LOGICAL_DATE = "2024-01-03T00:10:00+00:00"
"""The run at 00:10 on the 3rd covers the 2nd (its data interval starts then)."""


def _generate(home: Path, out: Path, overrides: dict | None = None, **options) -> None:
    settings = Settings.load(toml_path=None, env={}, overrides={"home": str(home), **(overrides or {})})
    with Runtime(settings) as runtime:
        generate(runtime, out, sparkhu=SPARKHU, **options)


def _upstream(grouped: bool) -> dict[str, list[str]]:
    dag = daily_dag()
    if not grouped:
        return {t.name: sorted(dag.upstream(t)) for t in dag.tasks}
    group_of = {name: g for g, members in TASK_GROUPS.items() for name in members}
    found: dict[str, set[str]] = {g: set() for g in TASK_GROUPS}
    for t in dag.tasks:
        found[group_of[t.name]].update(group_of[u] for u in dag.upstream(t))
    return {g: sorted(up - {g}) for g, up in found.items()}


def test_every_generated_file_imports_in_airflow_fast_and_without_sparkhu(
    fresh_home, airflow, tmp_path: Path
):
    home, dags = fresh_home("h"), tmp_path / "dags"
    for prefix, operator, group_by in [
        ("sub", "subprocess", "task"),
        ("grp", "subprocess", "task-group"),
        ("inp", "inprocess", "task"),
        ("spk", "spark-submit", "task-group"),
    ]:
        overrides = {"airflow.dag_prefix": prefix, "engine.uri": "local[1]"}
        if prefix == "grp":  # Airflow 3's deadline alert, the successor of SLAs
            overrides |= {"airflow.deadline_s": 3600, "airflow.deadline_callback": "builtins.print"}
        _generate(home, tmp_path / prefix, overrides, operator=operator, group_by=group_by)
        shutil.copytree(tmp_path / prefix, dags, dirs_exist_ok=True)  # a generation replaces its own folder
    parsed = airflow("parse", dags)
    assert parsed["sparkhu_modules"] == []  # sparkhu is on the path, but no file imported it
    files = parsed["files"]
    assert len(files) == 8
    for name, found in files.items():
        assert found["errors"] == {}, name
        assert found["seconds"] <= 1.0, (name, found["seconds"])
    pipelines = {name: f["dags"][name[:-3]] for name, f in files.items() if name.endswith("_pipeline.py")}
    for name, dag in pipelines.items():
        assert dag["tasks"] == _upstream(grouped=name.startswith(("grp", "spk"))), name
        assert (dag["catchup"], dag["retries"], dag["start_date"][:10]) == (True, 2, "2024-01-01")
        assert "10 0 * * *" in dag["schedule"]
    deadlines = {name: dag["deadline"] for name, dag in pipelines.items()}
    assert deadlines[f"grp_{DATASET}_pipeline.py"] == [["DagRunQueuedAtDeadline", 3600.0, "builtins.print"]]
    assert deadlines[f"sub_{DATASET}_pipeline.py"] == []
    spark = files[f"spk_{DATASET}_pipeline.py"]["dags"][f"spk_{DATASET}_pipeline"]["commands"]["quality"]
    assert "--master 'local[1]'" in spark and "cli/submit/__main__.py" in spark
    train = files[f"sub_{DATASET}_train.py"]["dags"][f"sub_{DATASET}_train"]
    assert (
        train["tasks"] == {"train": []}
        and "train --dataset ampds2_electricity --end" in train["commands"]["train"]
    )


def _lake_frames(home: Path) -> dict[tuple[str, str], pd.DataFrame]:
    lake = Lake(home / "lake")
    out = {}
    for zone, name in lake.datasets():
        frame = lake.read_table(zone, name).to_pandas()
        frame["series_id"] = frame["series_id"].astype(str)
        keys = [c for c in ("series_id", "ts", "series_b", "lag") if c in frame.columns]
        out[zone, name] = frame.sort_values(keys).reset_index(drop=True)
    return out


def test_airflow_runs_a_day_as_sparkhu_pipeline_run_does(fresh_home, airflow, tmp_path: Path):
    by_cli, by_airflow, dags = fresh_home("cli"), fresh_home("airflow"), tmp_path / "dags"
    assert sparkhu("--home", str(by_cli), "pipeline", "run", "--day", DAY) == 0
    _generate(by_airflow, dags, builders=["pipeline"])
    ran = airflow("test", dags, f"sparkhu_{DATASET}_pipeline", LOGICAL_DATE)
    assert ran["data_interval"][0].startswith(DAY)
    assert ran["state"] == "success", ran["log"][-5000:]
    assert ran["tasks"] == {t.name: "success" for t in daily_dag().tasks}
    expected, found = _lake_frames(by_cli), _lake_frames(by_airflow)
    assert sorted(found) == sorted(expected) and len(expected) == 15
    for key, frame in expected.items():
        assert len(frame) > 0, key
        pd.testing.assert_frame_equal(found[key], frame, obj=str(key))
    settings = Settings.load(toml_path=None, env={}, overrides={"home": str(by_airflow)})
    with Runtime(settings) as runtime:  # sparkhu's own scheduler sees the day as done: no double work
        runner = pipelines.daily(runtime, DATASET)
        assert all(date.fromisoformat(DAY) in runner.done_days(t.name) for t in runner.dag.tasks)


def test_a_failing_task_fails_its_airflow_task(fresh_home, airflow, tmp_path: Path):
    home, dags = fresh_home("h"), tmp_path / "dags"
    blocker = home / "lake" / "clean" / f"{DATASET}.deduped"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where dedup writes its folder")
    _generate(home, dags, {"pipeline.retries": 0}, builders=["pipeline"], group_by="task-group")
    ran = airflow("test", dags, f"sparkhu_{DATASET}_pipeline", LOGICAL_DATE)
    assert ran["state"] == "failed"
    downstream = {group: "upstream_failed" for group in ("gaps", "anomalies", "features")}
    assert ran["tasks"] == {"quality": "failed", **downstream}
    assert f"dedup {DAY} failed: cannot write" in ran["log"]
    assert "non-zero exit code 1" in ran["log"]


@pytest.mark.spark
def test_a_spark_submit_task_runs_sparkhu_on_spark(fresh_home, airflow, tmp_path: Path):
    home, dags = fresh_home("h"), tmp_path / "dags"
    overrides = {"engine.uri": "local[1]", "pipeline.exclude": ["dedup"]}  # validate alone: one Spark app
    _generate(home, dags, overrides, builders=["pipeline"], operator="spark-submit")
    ran = airflow("test", dags, f"sparkhu_{DATASET}_pipeline", LOGICAL_DATE)
    assert ran["state"] == "success", ran["log"][-5000:]
    assert ran["tasks"] == {"validate": "success"}
    assert "Running Spark version" in ran["log"]  # the driver's Spark, not the local process pool
    assert [p.key for p in Lake(home / "lake").partitions("validated", DATASET)] == [f"date={DAY}"]
