"""The advisor on a hand-made event log (known answers), and the ``sparkhu spark`` commands' bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparkhu.cli.main import run
from sparkhu.errors import InputError, NotFoundError
from sparkhu.sparkstudy.advisor import advise, observed_busy, simulate
from sparkhu.sparkstudy.eventlog import read_eventlog
from sparkhu.sparkstudy.settings import WorkerState

T0 = 1_700_000_000_000


def event_log(path: Path, *, tasks: int = 4, task_ms: int = 2000, instances: int = 1, cores: int = 1) -> Path:
    """An application of one job: a stage of ``tasks`` tasks, then a one-task stage after it."""
    events: list[dict] = [
        {"Event": "SparkListenerApplicationStart", "App Name": "x", "App ID": "app-1", "Timestamp": T0},
        {"Event": "SparkListenerEnvironmentUpdate", "Spark Properties": {
            "spark.executor.cores": str(cores), "spark.executor.memory": "512m",
            "spark.executor.instances": str(instances)}},
        {"Event": "SparkListenerExecutorAdded", "Timestamp": T0 + 1000, "Executor ID": "0",
         "Executor Info": {"Host": "127.0.0.1", "Total Cores": cores}},
        {"Event": "SparkListenerJobStart", "Job ID": 0, "Submission Time": T0 + 1000,
         "Stage Infos": [{"Stage ID": 0}, {"Stage ID": 1}]},
    ]  # fmt: skip
    start = T0 + 1500
    for stage, n, parents in ((0, tasks, []), (1, 1, [0])):
        info = {"Stage ID": stage, "Stage Attempt ID": 0, "Stage Name": f"s{stage}", "Number of Tasks": n,
                "Parent IDs": parents, "Submission Time": start}  # fmt: skip
        events.append({"Event": "SparkListenerStageSubmitted", "Stage Info": info})
        for i in range(n):  # one slot: tasks one after another
            launch = start + i * task_ms
            events.append({
                "Event": "SparkListenerTaskEnd", "Stage ID": stage, "Stage Attempt ID": 0,
                "Task Info": {"Executor ID": "0", "Launch Time": launch, "Finish Time": launch + task_ms,
                              "Failed": False},
                "Task Metrics": {"Executor Run Time": task_ms, "Executor CPU Time": task_ms * 10**6,
                                 "JVM GC Time": 10, "Shuffle Write Metrics": {"Shuffle Bytes Written": 100}},
            })  # fmt: skip
        start += n * task_ms
        events.append(
            {"Event": "SparkListenerStageCompleted", "Stage Info": {**info, "Completion Time": start}}
        )
    events += [
        {"Event": "SparkListenerJobEnd", "Job ID": 0, "Completion Time": start},
        {"Event": "SparkListenerApplicationEnd", "Timestamp": start + 500},
    ]
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    return path


def test_replay_and_predictions_on_a_known_log(tmp_path: Path):
    app = read_eventlog(event_log(tmp_path / "app-1"))
    assert app.wall_s == 12.0 and len(app.tasks) == 5 and app.executor_seconds() == {"0": 11.0}
    assert observed_busy(app) == 10.0  # 4 × 2 s, then 2 s
    assert simulate(app, 1, 1) == 10.0
    assert simulate(app, 2, 1) == 6.0  # 2 waves of 2 s, then the last stage
    assert simulate(app, 4, 1) == simulate(app, 100, 1) == 4.0
    advice = advise(app)
    assert advice.critical_path_s == 4.0 and advice.ideal_executors == 4
    # 2 s outside the tasks (waiting for the executor, the driver's end) stay as measured
    assert advice.predicted_wall(1) == 12.0 and advice.predicted_wall(2) == 8.0
    assert advice.predicted_wall(4) == 6.0


def test_pending_diagnosis_names_the_resource_and_the_advice_fits(tmp_path: Path):
    log = event_log(tmp_path / "app-1", instances=3, cores=2)
    workers = [
        WorkerState("w1", "127.0.0.1", 2, 2, 1024, 1024),
        WorkerState("w2", "127.0.0.1", 1, 1, 1024, 1024),
    ]
    advice = advise(log, workers=workers)
    assert advice.pending.startswith("2 of 3 executor(s) will pend")
    assert "w2 has 1 core(s) (cores short)" in advice.pending
    assert advice.recommended.executor_cores == 2 and advice.recommended.executor_instances == 1
    without = advise(log)
    assert without.pending.startswith("2 of 3 requested executor(s) never started")


def test_bad_event_logs(tmp_path: Path):
    with pytest.raises(NotFoundError, match="no such file"):
        read_eventlog(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFoundError, match="holds no finished event log"):
        read_eventlog(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.write_text("not json\n")
    with pytest.raises(InputError, match=r"bad:1: not a JSON event log"):
        read_eventlog(bad)
    other = tmp_path / "other"
    other.write_text('{"Event": "SomethingElse"}\n')
    with pytest.raises(InputError, match="not a Spark event log"):
        read_eventlog(other)
    packed = tmp_path / "app-2.zstd"
    packed.write_bytes(b"\x28\xb5\x2f\xfd")
    with pytest.raises(InputError, match="compressed event logs are not read"):
        read_eventlog(packed)


def sparkhu(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        run(list(argv))
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_textgen_jobs_and_advise(capsys, tmp_path: Path):
    home, text = str(tmp_path / "home"), tmp_path / "p.txt"
    code, out, _ = sparkhu(capsys, "--home", home, "spark", "textgen", "--size", "30KB", "--out", str(text))
    assert code == 0
    stats = json.loads(out.strip().splitlines()[-1])
    code, out, _ = sparkhu(capsys, "--home", home, "spark", "jobs", "run", "passwords", "--input", str(text))
    assert code == 0 and json.loads(out.splitlines()[0]) == {"strong": stats["strong"]}
    log = event_log(tmp_path / "app-1")
    code, out, _ = sparkhu(capsys, "--home", home, "spark", "advise", str(log))
    assert code == 0 and "ideal executor count: 4" in out and "2 → 8.0 s" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["spark", "textgen", "--size", "huge", "--out", "x.txt"], "size: 'huge' is not a size"),
        (["spark", "jobs", "run", "passwords", "--input", "nope.txt"], "input nope.txt: no such file"),
        (
            ["spark", "jobs", "run", "passwords", "--input", "x", "--form", "fast"],
            "form: 'fast' is not a form",
        ),
        (["spark", "jobs", "run", "count", "--input", "x"], "job: 'count' is not a job"),
        (["spark", "advise", "app-404"], "app-404: no such event log"),
        (
            ["spark", "study", "passwords", "--grid", "grid.toml", "--input", "x"],
            r"setting\[0\]\.executor_cores",
        ),
        (
            ["spark", "study", "passwords", "--grid", "missing.toml", "--input", "x"],
            "cannot read the grid file",
        ),
    ],
)
def test_cli_bad_input_is_one_line(capsys, tmp_path: Path, monkeypatch, argv: list[str], message: str):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "grid.toml").write_text("[[setting]]\nname = 'a'\nexecutor_cores = -2\n")
    code, _, err = sparkhu(capsys, "--home", str(tmp_path / "home"), *argv)
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    import re

    assert re.search(message, err), err


def test_most_executors_at_once_counts_overlaps_not_additions():
    from sparkhu.sparkstudy.eventlog import AppLog, Executor
    from sparkhu.sparkstudy.study import _most_at_once

    app = AppLog("a", "x", 0, 100)
    # dynamic allocation: two at once, then released, then one more, then two again
    for eid, added, removed in (("1", 0, 30), ("2", 10, 30), ("3", 30, 60), ("4", 50, None), ("5", 70, None)):
        app.executors[eid] = Executor(eid, "h", 1, added, removed)
    assert _most_at_once(app) == 2
