"""One retention pass at a time per home: a catalog lease (SQLite and PostgreSQL), across processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.retention.conftest import DATASET, all_rows, mark_processed, minutely
from tests.retention.test_cli import sparkhu

from sparkhu.config import Settings
from sparkhu.retention.apply import PASS_LEASE, RetentionBusy, exclusive, run
from sparkhu.retention.context import RetentionContext
from sparkhu.retention.policies import set_policy
from sparkhu.storage.catalog import Catalog

pytestmark = pytest.mark.integration

HOLDER = """
import sys
from sparkhu.config import RetentionSettings
from sparkhu.retention.apply import exclusive
from sparkhu.retention.context import RetentionContext
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
ctx = RetentionContext(Lake(sys.argv[2]), Catalog(sys.argv[1]), RetentionSettings(), sys.argv[2],
                       lease_ttl_s=float(sys.argv[3]))
with exclusive(ctx, "scheduler"):
    print("held", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


def holder(uri: str, lake: Path, ttl_s: float) -> subprocess.Popen[str]:
    """Another process holding the pass lease until its stdin gets a line."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, uri, str(lake), str(ttl_s)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_pass_is_refused_while_another_process_runs_one(
    ctx: RetentionContext, settings: Settings, tmp_path: Path
) -> None:
    now = datetime.fromtimestamp(ctx.now() / 1e6, UTC)
    ctx.lake.write("raw", DATASET, minutely(now - timedelta(days=6), 6, every_s=600))
    mark_processed(ctx.catalog, DATASET, (now - timedelta(days=7)).date(), now.date())
    set_policy(ctx, {"name": "raw-3d", "target": "raw", "keep_days": 3})
    before = all_rows(ctx)
    other = holder(settings.storage.catalog, tmp_path / "lake", 30)
    try:
        with pytest.raises(RetentionBusy, match=rf"already running .*scheduler, pid {other.pid} "):
            run(ctx, actor="cli")
        assert all_rows(ctx) == before  # nothing touched
    finally:
        out, _ = other.communicate("\n", timeout=30)
        assert out.strip() == "released"
    (result,) = run(ctx, actor="cli")  # released: the next pass runs
    assert result.rows > 0 and all_rows(ctx) < before


def test_the_lease_of_a_killed_holder_lapses(
    ctx: RetentionContext, settings: Settings, tmp_path: Path
) -> None:
    other = holder(settings.storage.catalog, tmp_path / "lake", 1.0)
    other.send_signal(signal.SIGKILL)
    other.communicate(timeout=30)
    with pytest.raises(RetentionBusy):
        with exclusive(ctx, "cli"):
            pass
    time.sleep(1.2)
    with exclusive(ctx, "cli"):
        pass  # taken over after the ttl


def test_the_heartbeat_keeps_a_long_pass_exclusive(ctx: RetentionContext, settings: Settings) -> None:
    ctx.lease_ttl_s = 0.6
    with Catalog(settings.storage.catalog) as other, exclusive(ctx, "scheduler"):
        with exclusive(ctx, "nested"):  # re-entrant within the pass
            time.sleep(1.5)  # over twice the ttl: renewed meanwhile
        taken, current = other.acquire_lease(PASS_LEASE, "intruder", 60)
        assert taken is None and current["actor"] == "scheduler"
    taken, _ = ctx.catalog.acquire_lease(PASS_LEASE, "after", 60)  # released at the end
    assert taken is not None
    ctx.catalog.release_lease(PASS_LEASE, taken)


def test_cli_apply_exits_non_zero_naming_the_running_pass(capsys, tmp_path: Path) -> None:
    with Catalog(f"sqlite:///{tmp_path}/catalog.db") as catalog:
        taken, _ = catalog.acquire_lease(
            PASS_LEASE, "x", 60, {"actor": "scheduler", "pid": 4242, "host": "h"}
        )
        assert taken is not None
        code, out, err = sparkhu(capsys, "--home", str(tmp_path), "retention", "apply")
        assert code != 0
        assert "a retention pass is already running on this home (scheduler, pid 4242 on h" in out + err
        catalog.release_lease(PASS_LEASE, taken)
    code, out, err = sparkhu(capsys, "--home", str(tmp_path), "retention", "apply")
    assert code == 0, out + err
