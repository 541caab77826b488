"""``sparkhu airflow dags``: the generated DAGs mirror sparkhu's jobs and settings (no Airflow here)."""

from __future__ import annotations

import ast
from datetime import date
from pathlib import Path

import pytest
from tests.orchestrate.conftest import DATASET, DAY, sparkhu

from sparkhu.app.runtime import Runtime
from sparkhu.config import Settings
from sparkhu.errors import ConfigError
from sparkhu.orchestrate.base import AirflowTask, DagSpec
from sparkhu.orchestrate.generate import generate
from sparkhu.orchestrate.pipeline import TASK_GROUPS
from sparkhu.pipeline.daily import daily_dag


def _generate(home: Path, out: Path, env: dict[str, str] | None = None, overrides=None, **options):
    settings = Settings.load(
        toml_path=None, env=env or {}, overrides={"home": str(home), **(overrides or {})}
    )
    with Runtime(settings) as runtime:
        return {g.spec.dag_id: g for g in generate(runtime, out, sparkhu="sparkhu", **options)}


def _pipeline_edges(**options) -> tuple[set[str], set[tuple[str, str]]]:
    dag = daily_dag(**options)
    return {t.name for t in dag.tasks}, {(u, t.name) for t in dag.tasks for u in dag.upstream(t)}


def test_the_pipeline_dag_has_the_pipelines_tasks_edges_and_settings(fresh_home, tmp_path: Path):
    env = {"SPARKHU_PIPELINE__SCHEDULE": "06:30", "SPARKHU_PIPELINE__RETRIES": "4"}
    made = _generate(fresh_home("h"), tmp_path / "dags", env)
    assert sorted(made) == [f"sparkhu_{DATASET}_pipeline", f"sparkhu_{DATASET}_train"]
    spec = made[f"sparkhu_{DATASET}_pipeline"].spec
    tasks, edges = _pipeline_edges()
    assert {t.task_id for t in spec.tasks} == tasks
    assert set(spec.edges()) == edges
    assert (spec.schedule, spec.retries, spec.catchup, str(spec.start_date)) == (
        "30 6 * * *",
        4,
        True,
        "2024-01-01",
    )
    impute = next(t for t in spec.tasks if t.task_id == "impute")
    assert impute.argv == (
        "pipeline",
        "run",
        "--dataset",
        DATASET,
        "--task",
        "impute",
        "--only",
        "--day",
        "{day}",
    )


def test_excluded_tasks_and_airflow_settings_reach_the_dag(fresh_home, tmp_path: Path):
    env = {
        "SPARKHU_AIRFLOW__CATCHUP": "false",
        "SPARKHU_AIRFLOW__START_DATE": "2023-12-01",
        "SPARKHU_AIRFLOW__TASK_TIMEOUT_S": "600",
    }
    made = _generate(
        fresh_home("h"), tmp_path / "dags", env, {"pipeline.exclude": ["correlation"]}, builders=["pipeline"]
    )
    spec = made[f"sparkhu_{DATASET}_pipeline"].spec
    tasks, edges = _pipeline_edges(exclude=["correlation"])
    assert {t.task_id for t in spec.tasks} == tasks and "correlation" not in tasks
    assert set(spec.edges()) == edges
    assert (spec.catchup, str(spec.start_date), spec.task_timeout_s) == (False, "2023-12-01", 600.0)


def test_task_groups_run_every_task_once_in_the_pipelines_order(fresh_home, tmp_path: Path):
    spec = _generate(fresh_home("h"), tmp_path / "dags", group_by="task-group", builders=["pipeline"])[
        f"sparkhu_{DATASET}_pipeline"
    ].spec
    assert [t.task_id for t in spec.ordered()] == list(TASK_GROUPS)
    names = [t.argv[i + 1] for t in spec.tasks for i, a in enumerate(t.argv) if a == "--task"]
    assert sorted(names) == sorted(_pipeline_edges()[0])  # each task exactly once
    assert all("--only" in t.argv for t in spec.tasks)
    group_of = {name: g for g, members in TASK_GROUPS.items() for name in members}
    implied = {(group_of[u], group_of[d]) for u, d in _pipeline_edges()[1]} - {(g, g) for g in TASK_GROUPS}
    assert set(spec.edges()) == implied


def test_a_cycle_between_groups_is_refused():
    with pytest.raises(ConfigError, match="wait for each other"):
        DagSpec("d", "0 0 * * *", date(2024, 1, 1), (
            AirflowTask("a", (), ("b",)), AirflowTask("b", (), ("a",)),
        ))  # fmt: skip


def test_training_dags_follow_the_policies(fresh_home, tmp_path: Path):
    home = fresh_home("h")
    settings = Settings.load(toml_path=None, env={}, overrides={"home": str(home)})
    with Runtime(settings) as runtime:
        runtime.catalog.set_policy(
            "training", "nightly", {"dataset": DATASET, "models": ["ses", "naive"], "schedule": "02:00"}
        )
    spec = _generate(home, tmp_path / "dags", builders=["train"])["sparkhu_nightly_train"].spec
    assert spec.schedule == "0 2 * * *" and not spec.catchup
    assert spec.tasks[0].argv == ("train", "--dataset", DATASET, "--models", "ses,naive", "--end", "{until}")
    with Runtime(settings) as runtime:
        runtime.catalog.set_policy("training", "nightly", {"dataset": DATASET, "windows": 0})
    with pytest.raises(
        ConfigError, match=r"training policy 'nightly': windows: .*greater than or equal to 1"
    ):
        _generate(home, tmp_path / "dags", builders=["train"])


def test_a_retention_dag_exists_when_retention_has_policies(fresh_home, tmp_path: Path):
    home = fresh_home("h")
    retention = {
        "schedule": "00:00",
        "timezone": "Asia/Seoul",
        "policies": [{"name": "raw-90", "target": "raw", "keep_days": 90, "action": "archive"}],
    }
    made = _generate(home, tmp_path / "dags", overrides={"retention": retention})
    spec = made["sparkhu_retention"].spec
    assert (spec.schedule, spec.timezone, spec.catchup) == ("0 0 * * *", "Asia/Seoul", False)
    assert [t.argv for t in spec.tasks] == [("retention", "apply")]
    text = made["sparkhu_retention"].path.read_text()
    assert "CronTriggerTimetable('0 0 * * *', timezone='Asia/Seoul'" in text
    ast.parse(text)
    # a policy stored at run time (the REST API, the dashboard) is enough too
    settings = Settings.load(toml_path=None, env={}, overrides={"home": str(home)})
    assert "sparkhu_retention" not in _generate(home, tmp_path / "none")
    with Runtime(settings) as runtime:
        policy = {"name": "runs-30", "target": "runs", "keep_days": 30}
        runtime.catalog.set_policy("retention", "runs-30", policy)
    assert "sparkhu_retention" in _generate(home, tmp_path / "stored", builders=["retention"])


def test_generated_files_import_airflow_only_and_old_ones_are_replaced(fresh_home, tmp_path: Path):
    out = tmp_path / "dags"
    out.mkdir()
    (out / "mine.py").write_text("# a DAG of someone else\n")
    (out / "sparkhu_gone_pipeline.py").write_text("# Generated by `sparkhu airflow dags` (old)\n")
    for operator in ("subprocess", "inprocess"):
        made = _generate(fresh_home(operator), out, operator=operator)
        for generated in made.values():
            tree = ast.parse(generated.path.read_text())
            top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
            modules = {n.module if isinstance(n, ast.ImportFrom) else n.names[0].name for n in top}
            assert modules <= {"datetime", "airflow.sdk", "airflow.timetables.trigger",
                               "airflow.providers.standard.operators.bash",
                               "airflow.providers.standard.operators.python"}, modules  # fmt: skip
    assert sorted(p.name for p in out.glob("*.py")) == [
        "mine.py", f"sparkhu_{DATASET}_pipeline.py", f"sparkhu_{DATASET}_train.py",
    ]  # fmt: skip


def test_the_inprocess_task_runs_sparkhu_and_fails_with_it(fresh_home, tmp_path: Path):
    home = fresh_home("h")
    made = _generate(home, tmp_path / "dags", operator="inprocess", builders=["pipeline"])
    tree = ast.parse(made[f"sparkhu_{DATASET}_pipeline"].path.read_text())
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run_sparkhu")
    namespace: dict = {}
    exec(compile(ast.Module([function], []), "generated", "exec"), namespace)
    run_sparkhu = namespace["run_sparkhu"]
    argv = [
        "--home",
        str(home),
        "pipeline",
        "run",
        "--dataset",
        DATASET,
        "--task",
        "validate",
        "--only",
        "--day",
        DAY,
    ]
    run_sparkhu(argv)
    assert (home / "lake" / "validated" / DATASET / f"date={DAY}").is_dir()
    with pytest.raises(RuntimeError, match="exited with status 2"):
        run_sparkhu(["--home", str(home), "pipeline", "run", "--dataset", "nope", "--day", DAY])


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--group-by", "level"], {}, "--group-by 'level': expected one of task, task-group"),
        (
            ["--operator", "docker"],
            {},
            "--operator 'docker': expected one of subprocess, inprocess, spark-submit",
        ),
        (
            ["--operator", "spark-submit"],
            {},
            "engine.uri: the spark-submit operator submits to a Spark master",
        ),
        (["--job", "nope"], {}, "unknown Airflow DAG builder 'nope'; known: pipeline, retention, train"),
        ([], {"SPARKHU_AIRFLOW__START_DATE": "01/02/2024"}, "airflow.start_date: expected a day YYYY-MM-DD"),
        ([], {"SPARKHU_AIRFLOW__TRAIN_SCHEDULE": "sometimes"}, "airflow.train_schedule: expected HH:MM"),
        (
            [],
            {"SPARKHU_AIRFLOW__DEADLINE_S": "60"},
            "a deadline needs both [airflow] deadline_s and deadline_callback",
        ),
        (
            [],
            {"SPARKHU_AIRFLOW__DEADLINE_CALLBACK": "not a path"},
            "airflow.deadline_callback: String should match",
        ),
    ],
)
def test_bad_options_are_one_line(capsys, monkeypatch, fresh_home, tmp_path: Path, args, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = sparkhu("--home", str(fresh_home("h")), "airflow", "dags", "--out", str(tmp_path / "dags"), *args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err


def test_an_empty_home_has_nothing_to_generate(capsys, tmp_path: Path):
    code = sparkhu("--home", str(tmp_path / "empty"), "airflow", "dags", "--out", str(tmp_path / "dags"))
    assert code == 2 and "no dataset to generate DAGs for" in capsys.readouterr().err
    code = sparkhu(
        "--home", str(tmp_path / "empty"), "airflow", "dags", "--out", str(tmp_path / "d"), "--dataset", "x_y"
    )
    assert code == 2 and "dataset x_y: no data in the lake to start the DAGs from" in capsys.readouterr().err
