"""A study of four settings on a two-worker standalone cluster, and the advisor checked against it.

One setting over-asks (2 cores per executor on workers of 1 core): it is reported as
``will pend`` before it runs, with the reason naming the short resource and the workers; run
anyway, it times out with the same diagnosis instead of hanging. The advisor's replay of each
run on its own executors must come within ``TOLERANCE`` of the run's measured task time, and its
predictions at other executor counts stay within their bounds.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from sparkhu.sparkstudy import report
from sparkhu.sparkstudy.advisor import advise, observed_busy, simulate
from sparkhu.sparkstudy.eventlog import read_eventlog
from sparkhu.sparkstudy.settings import Setting, grid_from_dict, placement
from sparkhu.sparkstudy.study import Study, run_setting, run_study
from sparkhu.sparkstudy.textgen import generate
from sparkhu.storage.lake import Lake

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1200)]

# The replay of a run on its own executors must come within TOLERANCE of the task time it
# measured: that is what the advisor's predictions are built on. Across runs (predicting the
# two-executor run from the one-executor run) this suite only checks bounds: on a shared 2-core
# machine a second executor contends with the driver and the other executor for the same two
# cores, and its first task pays its own start (Python workers, the dictionary's broadcast) — seen
# at 24 s against 1 s for its neighbours — which no replay of another run can know. The advisor's
# error across runs is measured where it means something, on the 1 GB study (bench/spark_study.py).
TOLERANCE = 0.25

GRID = {
    "prices": {"vcpu_hour": 0.04, "gb_hour": 0.005},
    "setting": [
        {"name": "one", "executor_cores": 1, "executor_memory": "512m", "executor_instances": 1},
        {"name": "two", "executor_cores": 1, "executor_memory": "512m", "executor_instances": 2},
        {"name": "dyn", "executor_cores": 1, "executor_memory": "512m", "executor_instances": 2,
         "dynamic_allocation": True},
        {"name": "big", "executor_cores": 2, "executor_memory": "512m", "executor_instances": 1},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def study(cluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[Study, int]:
    folder = tmp_path_factory.mktemp("study")
    text = folder / "passwords.txt"
    stats = generate(text, "1MB", seed=11)
    result = run_study(
        "passwords", grid_from_dict(GRID), str(text), master=cluster.uri, master_ui=cluster.ui,
        workers=cluster.worker_states(), workdir=folder, form="udf", split_bytes=128 * 1024,
        pend_timeout_s=240,
    )  # fmt: skip
    return result, stats.strong


def test_every_setting_that_fits_runs_and_counts_right(study):
    result, strong = study
    rows = {r["setting"]: r for r in result.rows}
    assert [r["setting"] for r in result.rows] == ["one", "two", "dyn", "big"]
    for name in ("one", "two", "dyn"):
        row = rows[name]
        assert row["status"] == "ok", row
        assert json.loads(row["counts"]) == {"strong": strong}
        assert row["wall_s"] > row["job_s"] > 0
        assert row["executor_s"] > 0 and row["vcpu_s"] >= row["executor_s"] and row["cost"] > 0
        assert row["task_s"] > 0 and row["gc_s"] >= 0 and row["shuffle_write_mb"] >= 0
        assert 0 < row["mem_max_mb"] and row["mem_avg_mb"] <= row["mem_max_mb"]
        assert 0 <= row["cpu_avg_pct"] <= row["cpu_max_pct"]
        assert row["time_x_cost"] == pytest.approx(row["wall_s"] * row["cost"], rel=1e-3)
        assert result.timelines[name], name
    assert rows["one"]["executors_max"] == 1 and rows["two"]["executors_max"] == 2
    assert result.best() is not None and result.best()["status"] == "ok"


def test_the_over_asking_setting_is_reported_before_it_runs(study, cluster):
    rows = {r["setting"]: r for r in study[0].rows}
    big = rows["big"]
    assert big["status"] == "will pend" and big["wall_s"] is None
    assert big["reason"].startswith("all 1 executor(s) will pend: each asks 2 cores and 512 MB")
    for worker in cluster.worker_states():
        assert f"{worker.id} has 1 core(s) (cores short)" in big["reason"]


def test_a_run_that_never_gets_executors_times_out_with_the_diagnosis(
    cluster, tmp_path: Path, passwords_file
):
    path, _ = passwords_file
    big = Setting("big", executor_cores=2, executor_memory_mb=512, executor_instances=1)
    row, timeline = run_setting(
        big, "first_char", "vectorised", str(path), master=cluster.uri, master_ui=cluster.ui,
        workdir=tmp_path, pend_timeout_s=5,
    )  # fmt: skip
    assert row["status"] == "timeout"
    assert row["reason"].startswith("no executor started within 5 s: all 1 executor(s) will pend")
    assert "cores short" in row["reason"]
    assert all(point["running"] == 0 for point in timeline)


def test_the_advisor_replays_each_run_and_bounds_its_predictions(study):
    rows = {r["setting"]: r for r in study[0].rows}
    one, two = read_eventlog(rows["one"]["event_log"]), read_eventlog(rows["two"]["event_log"])
    assert simulate(one, 1, 1) == pytest.approx(observed_busy(one), rel=TOLERANCE)
    assert simulate(two, 2, 1) == pytest.approx(observed_busy(two), rel=TOLERANCE)
    # more slots never predict a longer schedule, nor one shorter than the longest task's chain
    advice = advise(one, counts=[1, 2])
    assert advice.predicted_wall(1) == pytest.approx(advice.wall_s, rel=TOLERANCE)
    assert advice.critical_path_s <= advice.predicted_wall(2) <= advice.predicted_wall(1)
    assert simulate(one, 2, 1) <= simulate(one, 1, 1)
    assert 1 <= advice.ideal_executors


def test_the_advice_fits_the_workers(study, cluster):
    rows = {r["setting"]: r for r in study[0].rows}
    workers = cluster.worker_states()
    advice = advise(rows["two"]["event_log"], workers=workers)
    assert advice.setting.executor_instances == 2 and advice.setting.executor_cores == 1
    assert advice.pending.startswith("none")
    assert placement(advice.recommended, workers).pending == 0
    lines = "\n".join(advice.lines())
    assert "ideal executor count" in lines and "predicted wall time" in lines


def test_results_go_to_csv_plots_and_the_lake(study, tmp_path: Path):
    result = study[0]
    path = report.write_csv(result, tmp_path / "runs.csv")
    with path.open() as f:
        assert [r["setting"] for r in csv.DictReader(f)] == ["one", "two", "dyn", "big"]
    for png in report.write_plots(result, tmp_path):
        assert png.stat().st_size > 1000
    lake = Lake(str(tmp_path / "lake"))
    report.write_lake(result, lake)
    report.write_lake(result, lake)  # again: replaces, no duplicates
    [stored] = report.read_studies(lake)
    assert stored["id"] == result.id and [r["setting"] for r in stored["runs"]] == [
        "big",
        "dyn",
        "one",
        "two",
    ]
    assert sum(len(t) for t in stored["timelines"].values()) == sum(len(t) for t in result.timelines.values())


def test_cli_study_in_parallel_on_a_running_cluster_and_its_advice_checked(
    cluster, tmp_path: Path, passwords_file, capsys
):
    from sparkhu.cli.main import run
    from sparkhu.config import Settings

    path, stats = passwords_file
    grid = tmp_path / "grid.toml"
    grid.write_text(
        "[[setting]]\nname = 'a'\nexecutor_memory = '512m'\n"
        "[[setting]]\nname = 'b'\nexecutor_memory = '512m'\n"
        "[[setting]]\nname = 'huge'\nexecutor_memory = '4g'\n"
    )
    home = tmp_path / "home"
    argv = ["--home", str(home), "spark", "study", "first_char", "--grid", str(grid), "--input", str(path),
            "--form", "vectorised", "--master", cluster.uri, "--master-ui", cluster.ui, "--parallel",
            "--out", str(tmp_path / "out"), "--check-advice"]  # fmt: skip
    try:
        run(argv)
    except SystemExit as exit_info:
        assert not exit_info.code
    out = capsys.readouterr().out
    assert (
        "huge: all 1 executor(s) will pend: each asks 1 cores and 4096 MB" in out and "(memory short)" in out
    )
    # --check-advice: advice from the first finished run, the recommended setting run, both times shown
    flat = " ".join(out.split())
    assert "advice from the run of a:" in flat and "ideal executor count:" in flat
    checked = re.search(
        r"advised setting \((\d+) executor\(s\)\): predicted ([\d.]+) s, measured ([\d.]+) s", flat
    )
    assert checked, out
    advised, predicted, measured = int(checked[1]), float(checked[2]), float(checked[3])
    assert 1 <= advised <= 2  # what the two workers of one core hold
    # the prediction keeps the first run's start-up, which varies from run to run on a shared machine
    assert predicted > 0 and measured / 3 <= predicted <= measured * 3, (predicted, measured)
    [folder] = [p for p in (tmp_path / "out").iterdir() if (p / "runs.csv").exists()]
    assert list((folder / "advised" / "events").iterdir())
    with (folder / "runs.csv").open() as f:
        rows = {r["setting"]: r for r in csv.DictReader(f)}
    assert rows["a"]["status"] == rows["b"]["status"] == "ok" and rows["huge"]["status"] == "will pend"
    for name in ("a", "b"):
        assert json.loads(rows[name]["counts"]) == dict(sorted(stats.first_chars.items()))
    assert (folder / "time_cost.png").exists() and (folder / "executors.png").exists()
    settings = Settings.load(toml_path=None, env={"SPARKHU_HOME": str(home)})
    [stored] = report.read_studies(Lake(settings.storage.lake))
    assert stored["id"] == folder.name and len(stored["runs"]) == 3
