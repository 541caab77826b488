"""kill -9 of the controller between every two durable steps of a promotion leaves the registry, the
aliases, the history and the learner consistent: the cycle ends once, as without the kills.

Slow (three processes, ~10-15 s each here) by design: each kill is a new process that imports MLflow.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.control.controller_job import SERIES, TOPIC

from sparkhu.app.runtime import Runtime
from sparkhu.config import Settings
from sparkhu.control import moves
from sparkhu.control.policies import policies_in_force
from sparkhu.forecast.models import make_model
from sparkhu.forecast.registry import registered_name
from sparkhu.series import points
from sparkhu.stream.codecs import publish_points

pytestmark = pytest.mark.slow
T0 = 1_700_000_000 * 1_000_000
MINUTE = 60_000_000
JOB = Path(__file__).with_name("controller_job.py")
POLICY = """
[[policies]]
name = "kill"
series = "ctl/kill/*"
drift = false
rollback_margin = 0.1
gate = {margin = 0.05, min_points = 5}
"""


def _job(home: Path, kill_after: int) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).parents[2]
    env = {"PYTHONPATH": f"{root / 'src'}:{root}", "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, str(JOB), str(home), "--kill-after", str(kill_after)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)


def test_a_controller_killed_between_its_steps_finishes_the_promotion_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "sparkhu.toml").write_text(POLICY)
    settings = Settings.load(toml_path=home / "sparkhu.toml", env={}, overrides={"home": str(home)})
    rng = np.random.default_rng(11)
    before, after = 10.0 + rng.normal(0, 0.1, 30), 20.0 + rng.normal(0, 0.1, 90)
    with Runtime(settings) as runtime:
        ts = T0 + np.arange(120) * MINUTE
        table = points(SERIES, ts, np.concatenate([before, after]))
        runtime.lake.write("raw", TOPIC, table)  # the lake sink's part: actuals for the evidence
        runtime.bus.create_topic(TOPIC, partitions=1)
        for i in range(30, table.num_rows):  # the stream after the shift
            publish_points(runtime.bus, TOPIC, table.slice(i, 1))
        meta = {"period_s": 60.0, "last_ts_us": int(ts[29])}
        slow = make_model("ses", alpha=0.02).fit(before)
        quick = make_model("ses", alpha=0.9).fit(before)
        v1 = runtime.registry.log_training(SERIES, slow, alias="champion", meta=meta).version
        v2 = runtime.registry.log_training(SERIES, quick, meta=meta).version
        (policy,) = policies_in_force(runtime.catalog, settings.policies)
        cycle = moves.adopt_challenger(
            runtime.catalog, runtime.registry, SERIES, v2, policy=policy, actor="test"
        )

    # durable control writes: cycle → promoting (1), champion alias (2), history row (3), cycle →
    # swapping (4), → watching (5), → promoted (6); each run counts its own, replayed ones included
    def killed_after(writes: int) -> None:
        done = _job(home, kill_after=writes)
        assert done.returncode == -9, done.stdout + done.stderr[-2000:]

    def now() -> tuple[str, dict[str, int], list[str]]:
        with Runtime(settings) as runtime:
            history = runtime.catalog.champion_history(registered_name(SERIES))
            return (
                runtime.catalog.action(cycle)["state"],
                runtime.registry.aliases(SERIES),
                [h["event"] for h in history],
            )

    killed_after(2)  # the alias moved, the history not written yet
    assert now() == ("promoting", {"champion": v2, "challenger": v2}, ["train"])
    killed_after(3)  # replayed: alias again (a no-op), history written once, moved to swapping; not swapped
    assert now() == ("swapping", {"champion": v2, "previous": v1}, ["train", "promote"])
    done = _job(home, kill_after=0)  # restart: restored predictor, champion swapped in, watched, confirmed
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert done.stdout.startswith(f"final promoted ses@v{v2}"), done.stdout
    with Runtime(settings) as runtime:
        assert runtime.registry.aliases(SERIES) == {"champion": v2, "previous": v1}
        history = runtime.catalog.champion_history(registered_name(SERIES))
        assert [(h["event"], h["version"], h["previous_version"], h["action_id"]) for h in history] == [
            ("train", v1, None, None),
            ("promote", v2, v1, cycle),
        ]
        action = runtime.catalog.action(cycle)
        assert action["state"] == "promoted"
        assert (
            action["detail"]["numbers"]["challenger_mae"] < 0.95 * action["detail"]["numbers"]["champion_mae"]
        )
        audit = [e["action"] for e in runtime.catalog.audit_log(limit=100) if e["target"] == SERIES][::-1]
        assert audit.count("model.promote") == 1 and audit.count("promotion.confirmed") == 1
