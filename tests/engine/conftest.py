"""Spark fixtures: one local[2] engine and one standalone cluster (a master and two workers) per session.

The cluster is started from the pip-installed PySpark (``bin/spark-class``) with the machine's
Java; each process gets its own free ports and work directory on 127.0.0.1, and all are
stopped (by process group) at the end of the session. PySpark allows one active session per
process: a test on the cluster closes the local engine first (it restarts lazily if needed).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TEST_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SparkCluster:
    """A running standalone cluster: its master URI and the master's web UI (JSON status)."""

    uri: str
    ui: str
    processes: list[subprocess.Popen[bytes]]

    def status(self) -> dict:
        with urllib.request.urlopen(f"{self.ui}/json", timeout=2) as response:
            return json.load(response)

    def alive_workers(self) -> int:
        return sum(1 for w in self.status().get("workers", []) if w.get("state") == "ALIVE")


@pytest.fixture(scope="session")
def spark_local() -> Iterator[object]:
    pytest.importorskip("pyspark")
    from sparkhu.engine.spark import SparkEngine

    engine = SparkEngine("local[2]", conf=TEST_CONF)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    pyspark = pytest.importorskip("pyspark")
    home = Path(pyspark.__file__).parent
    spark_class = home / "bin" / "spark-class"
    root = tmp_path_factory.mktemp("spark-cluster")
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(root / "logs"),
        "SPARK_WORKER_DIR": str(root / "work"),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_NO_DAEMONIZE": "1",
    }
    port, ui = _free_port(), _free_port()
    master = f"spark://127.0.0.1:{port}"
    commands = [
        ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
         "--webui-port", str(ui)],
    ] + [
        ["org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1", "--cores", "1",
         "--memory", "1g", "--webui-port", str(_free_port()), "--work-dir", str(root / f"work{i}")]
        for i in range(2)
    ]  # fmt: skip
    processes: list[subprocess.Popen[bytes]] = []
    cluster = SparkCluster(master, f"http://127.0.0.1:{ui}", processes)
    try:
        for n, args in enumerate(commands):
            with (root / f"process{n}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        [str(spark_class), *args],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + 60
        while True:
            try:
                if cluster.alive_workers() == 2:
                    break
            except OSError:
                pass
            dead = [p.args for p in processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join((root / f"process{n}.log").read_text()[-800:] for n in range(3))
                pytest.fail(f"standalone Spark cluster did not come up ({dead or 'timeout'}):\n{logs}")
            time.sleep(0.3)
        yield cluster
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
