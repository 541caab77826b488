"""kill -9 at random points of a retention run, then a re-run: the same end state as a run that was
never interrupted — no row lost or left behind, no half-archived partition, no archive without its
manifest, every rollup whole."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.retention.conftest import DATASET, NOW, mark_processed, minutely

from sparkhu.config import RetentionSettings
from sparkhu.retention import archive
from sparkhu.retention.apply import run
from sparkhu.retention.context import RetentionContext
from sparkhu.retention.policies import set_policy
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
from sparkhu.timeaxis import to_us

pytestmark = pytest.mark.timeout(300)

WORKER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from sparkhu.config import RetentionSettings
    from sparkhu.retention.apply import run
    from sparkhu.retention.context import RetentionContext
    from sparkhu.storage.catalog import Catalog
    from sparkhu.storage.lake import Lake

    home, now, kill_at = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    calls = [0]

    def fault(step):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    ctx = RetentionContext(Lake(home / "lake"), Catalog(f"sqlite:///{home}/catalog.db"),
                           RetentionSettings(floor_days=1, training_days=7), str(home / "archive"),
                           clock=lambda: now, lease_ttl_s=1.0)
    run(ctx, fault=fault)
    """
)


def context(home: Path) -> RetentionContext:
    return RetentionContext(
        Lake(home / "lake"),
        Catalog(f"sqlite:///{home}/catalog.db"),
        RetentionSettings(floor_days=1, training_days=7),
        str(home / "archive"),
        clock=lambda: to_us(NOW),
    )


def worker(home: Path, kill_at: int) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(home), str(to_us(NOW)), str(kill_at)],
        env=env,
        timeout=240,
        check=False,
    )
    return done.returncode


def state(home: Path) -> dict[str, Any]:
    ctx = context(home)
    try:
        raw = ctx.lake.read("raw", DATASET)
        manifests = archive.manifests(ctx)
        archived = sorted(
            (r["series_id"], r["ts"].isoformat(), r["value"])
            for m in manifests
            for r in archive.read(ctx, m).to_pylist()
        )
        root = archive.ArchiveRoot.open(ctx.archive)
        data_files = sorted(str(p.relative_to(root.base)) for p in Path(root.base).rglob("*.parquet"))
        rollups = {
            every: json.dumps(
                ctx.lake.read_table("analysis", f"{DATASET}.ds{every}s").to_pylist(), default=str
            )
            for every in (300, 3600)
        }
        plan_ids = re.compile(r"/p\d+-[0-9a-f]+-")  # plan ids differ from run to run
        return {
            "raw": raw.to_pylist(),
            "archived": archived,
            "archive_files": [plan_ids.sub("/PLAN-", f) for f in data_files],
            "manifest_files": sorted(plan_ids.sub("/PLAN-", m["file"]) for m in manifests),
            "rollups": rollups,
        }
    finally:
        ctx.catalog.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("template")
    ctx = context(home)
    ctx.lake.write("raw", DATASET, minutely(NOW - timedelta(days=8), 8, every_s=300))
    mark_processed(ctx.catalog, DATASET, (NOW - timedelta(days=8)).date(), NOW.date())
    set_policy(ctx, {"name": "backup", "target": "raw", "action": "archive", "keep_days": 5.25})
    set_policy(
        ctx,
        {
            "name": "ladder",
            "target": "raw",
            "action": "downsample",
            "keep_days": 3.5,
            "levels": [{"every_s": 900, "keep_days": 4}, {"every_s": 3600, "keep_days": 30}],
        },
    )
    ctx.catalog.close()
    return home


@pytest.fixture(scope="module")
def reference(template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], int]:
    home = tmp_path_factory.mktemp("reference")
    shutil.copytree(template, home, dirs_exist_ok=True)
    ctx = context(home)
    calls = [0]
    run(ctx, fault=lambda _: calls.__setitem__(0, calls[0] + 1))
    run(ctx)
    ctx.catalog.close()
    return state(home), calls[0]


def test_the_reference_run_did_something(reference: tuple[dict[str, Any], int]) -> None:
    end, steps = reference
    assert steps > 10 and end["archived"] and end["rollups"][3600] != "[]"
    assert end["archive_files"] == end["manifest_files"]


@pytest.mark.parametrize("draw", range(5))
def test_kill_9_then_rerun_reaches_the_same_end_state(
    draw: int, template: Path, reference: tuple[dict[str, Any], int], tmp_path: Path
) -> None:
    end, steps = reference
    kill_at = random.Random(20240301 + draw).randint(1, steps)
    shutil.copytree(template, tmp_path, dirs_exist_ok=True)
    assert worker(tmp_path, kill_at) == -signal.SIGKILL
    time.sleep(1.1)  # the killed pass's lease lapses (it refuses a second pass until then)
    assert worker(tmp_path, 0) == 0  # resumes the interrupted run, then plans anew
    got = state(tmp_path)
    assert got["archive_files"] == got["manifest_files"]  # no archive without its manifest
    assert got == end
