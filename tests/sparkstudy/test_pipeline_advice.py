"""The advisor applied to sparkhu's own daily DAG on the Spark engine.

Event logs are turned on for the engine's session the documented way (Spark's own
``spark-defaults.conf`` in ``SPARK_CONF_DIR``); ``sparkhu pipeline run`` runs in a subprocess
(one Spark session per process, and the test process may hold another engine's) on ``local[2]``
over the demo home of the orchestration tests, then ``sparkhu spark advise`` reads the log.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.orchestrate.conftest import DAY, clean_env, demo_home  # noqa: F401 (the fixture)

from sparkhu.cli.main import run

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(600)]

TASKS = ("validate",)
"""The DAG's first task alone: an application of several Spark jobs, kept short (the whole DAG
takes minutes on Spark, most of it the driver's)."""


def test_the_advisor_reads_the_pipeline_run_on_spark(demo_home: Path, tmp_path: Path, capsys):  # noqa: F811
    pytest.importorskip("pyspark")
    home = Path(shutil.copytree(demo_home, tmp_path / "home"))
    events, conf = tmp_path / "events", tmp_path / "spark-conf"
    events.mkdir()
    conf.mkdir()
    (conf / "spark-defaults.conf").write_text(
        f"spark.eventLog.enabled true\nspark.eventLog.dir file://{events}\nspark.eventLog.compress false\n"
    )
    env = {**clean_env(), "SPARK_CONF_DIR": str(conf), "SPARKHU_ENGINE__URI": "local[2]"}
    tasks = [arg for name in TASKS for arg in ("--task", name)]
    done = subprocess.run(
        [sys.executable, "-m", "sparkhu.cli", "--home", str(home), "pipeline", "run", *tasks, "--only",
         "--day", DAY],
        env=env, capture_output=True, text=True, timeout=480,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    assert f"success: {len(TASKS)} task-day(s)" in done.stdout
    [log] = list(events.iterdir())  # one application: a file, or a folder of rolling logs
    assert "local-" in log.name and "inprogress" not in log.name

    try:
        run(["--home", str(home), "spark", "advise", str(events)])  # the folder, as a user would give it
    except SystemExit as exit_info:
        assert not exit_info.code
    out = " ".join(capsys.readouterr().out.split())
    found = re.search(
        r"application (local-\d+): ([\d.]+) s wall, ([\d.]+) s running tasks, 1 executor\(s\) of 2", out
    )
    assert found, out
    wall, busy = float(found[2]), float(found[3])
    assert 0 < busy < wall

    def grab(pattern: str) -> str:
        match = re.search(pattern, out)
        assert match, (pattern, out)
        return match[1]

    critical = float(grab(r"critical path \(unlimited executors\): ([\d.]+) s of tasks"))
    assert 0 < critical <= busy * 1.05
    assert int(grab(r"ideal executor count: (\d+)")) >= 1
    predicted = dict(
        (int(n), float(s)) for n, s in re.findall(r"(\d+) → ([\d.]+) s", out.split("predicted wall time:")[1])
    )
    assert {1, 2, 4, 8} <= predicted.keys()
    # replaying the run on its own executor gives back its wall time; no count beats the time
    # outside the tasks plus the critical path (0.2: four figures printed to 0.1 s)
    assert predicted[1] == pytest.approx(wall, rel=0.25)
    assert min(predicted.values()) >= wall - busy + critical - 0.2
    assert "pending executors: none" in out
    assert re.search(r"recommended: \d+ executor\(s\) × 2 core\(s\)", out)
    assert "replaying the run itself gives" in out
