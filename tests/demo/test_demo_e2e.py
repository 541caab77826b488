"""End to end: `sparkhu demo` headless; while it runs, the GraphQL API serves blended forecasts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

QUERY = """
query($id: String!) {
  series(prefix: "ampds2/") { id }
  predictions(seriesId: $id) { ts value updates }
  points(seriesId: $id, limit: 5) { ts value }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_serves_blended_forecasts(tmp_path: Path, distributed_env: dict[str, str]):
    port = _free_port()
    exe = Path(sys.executable).with_name("sparkhu")
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(exe),
                "--home",
                str(tmp_path),
                "demo",
                "--days",
                "2",
                "--speed",
                "600",
                "--duration",
                "40",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **distributed_env},  # embedded: nothing added; distributed: PG, Kafka, Spark
        )
    url = f"http://127.0.0.1:{port}/graphql"
    found = None
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = httpx.post(
                    url, json={"query": QUERY, "variables": {"id": "ampds2/electricity/WHE.P"}}, timeout=5
                ).json()
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            data = answer.get("data") or {}
            preds = data.get("predictions") or []
            if any(p["updates"] > 1 for p in preds):
                found = data
                break
            time.sleep(0.5)
        # served; once its first status line is out, SIGTERM instead of running out the 40 s
        while found is not None and proc.poll() is None and time.monotonic() < deadline:
            if "live 10 s:" in log.read_text(errors="replace"):
                proc.send_signal(signal.SIGTERM)
                break
            time.sleep(0.5)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text(errors="replace")
    assert proc.returncode == 0, output
    assert f"http://127.0.0.1:{port}/" in output
    assert found is not None, f"no blended forecasts were served; demo output:\n{output}"
    assert len(found["series"]) >= 11  # whole-house meter and at least 10 sub-meters
    assert found["points"], "actuals are served too"
    assert "Traceback" not in output
    # piped output: plain progress lines, not bars nobody sees
    assert "generating and ingesting the history" in output and "ready " in output
    assert "live 10 s: source demo:live: points" in output, output
