"""The local cluster's processes do not outlive a killed parent (no Spark needed to check it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PARENT = """
import subprocess, sys
from sparkhu.sparkstudy.cluster import _die_with_parent
child = subprocess.Popen(["sleep", "120"], start_new_session=True, preexec_fn=_die_with_parent)
print(child.pid, flush=True)
sys.stdin.read()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a parent-death signal is Linux's")
def test_a_process_started_like_a_cluster_s_ends_when_its_parent_is_killed(tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"), *sys.path])}
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)  # in its own session, like the master and workers
    parent.kill()  # no stop(), no finally: what a SIGKILL or an unhandled SIGTERM leaves
    parent.communicate()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not _alive(child):
            return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the child outlived its killed parent")


def _alive(pid: int) -> bool:
    """Running, not gone and not a zombie waiting for whoever adopted it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"
