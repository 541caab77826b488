"""A standalone Spark cluster on 127.0.0.1: a master and workers from the pip-installed PySpark.

Each process is ``bin/spark-class org.apache.spark.deploy.master.Master`` or ``...worker.Worker``
in its own process group, with its own free ports and work directory under ``root``; the
cluster is a context manager and :meth:`LocalCluster.stop` ends every process group (TERM,
then KILL after a grace period) even when start-up failed half way.

>>> LocalCluster("/tmp/x", workers=0)
Traceback (most recent call last):
...
sparkhu.errors.InputError: workers: must be at least 1, got 0
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from sparkhu.errors import BackendUnavailable, ConfigError, InputError
from sparkhu.sparkstudy.settings import WorkerState, parse_memory


def master_status(ui: str, timeout_s: float = 2.0) -> dict[str, Any]:
    """The master's JSON status (workers, active and completed applications)."""
    try:
        with urllib.request.urlopen(f"{ui.rstrip('/')}/json/", timeout=timeout_s) as response:
            data: dict[str, Any] = json.load(response)
            return data
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise BackendUnavailable(ui, f"the Spark master's status page does not answer ({exc})") from exc


def workers_of(ui: str) -> list[WorkerState]:
    """The alive workers the master at ``ui`` knows."""
    return [w for w in map(WorkerState.from_json, master_status(ui).get("workers", [])) if w.alive]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCluster:
    """A master and ``workers`` workers of ``worker_cores`` cores and ``worker_memory`` each.

    Use as ``with LocalCluster(root, workers=2) as cluster: ...``; ``cluster.uri`` is the
    ``spark://`` master URI and ``cluster.ui`` its web UI (JSON status at ``/json``).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        workers: int = 2,
        worker_cores: int = 1,
        worker_memory: str = "1g",
        start_timeout_s: float = 90.0,
        env: dict[str, str] | None = None,
    ) -> None:
        for name, value in (("workers", workers), ("worker_cores", worker_cores)):
            if value < 1:
                raise InputError(f"must be at least 1, got {value}", field=name)
        self.root = Path(root)
        self.workers = workers
        self.worker_cores = worker_cores
        self.worker_memory_mb = parse_memory(worker_memory, field="worker_memory")
        self.start_timeout_s = start_timeout_s
        self.env = env
        self.port, self.ui_port = 0, 0
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def uri(self) -> str:
        """The master's ``spark://`` URI."""
        return f"spark://127.0.0.1:{self.port}"

    @property
    def ui(self) -> str:
        """The master's web UI."""
        return f"http://127.0.0.1:{self.ui_port}"

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the master and the workers; return when every worker is registered."""
        spark_class = _spark_home() / "bin" / "spark-class"
        self.root.mkdir(parents=True, exist_ok=True)
        env = {
            **(os.environ if self.env is None else self.env),
            "SPARK_HOME": str(_spark_home()),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOG_DIR": str(self.root / "logs"),
            "SPARK_WORKER_DIR": str(self.root / "work"),
            "PYSPARK_PYTHON": sys.executable,
            "SPARK_NO_DAEMONIZE": "1",
        }
        self.port, self.ui_port = free_port(), free_port()
        commands = [
            ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(self.port),
             "--webui-port", str(self.ui_port)],
        ] + [
            ["org.apache.spark.deploy.worker.Worker", self.uri, "--host", "127.0.0.1",
             "--cores", str(self.worker_cores), "--memory", f"{self.worker_memory_mb}m",
             "--webui-port", str(free_port()), "--work-dir", str(self.root / f"work{i}")]
            for i in range(self.workers)
        ]  # fmt: skip
        try:
            for n, args in enumerate(commands):
                with (self.root / f"process{n}.log").open("wb") as log:
                    self.processes.append(
                        subprocess.Popen(
                            [str(spark_class), *args],
                            env=env,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            # one process group each: stop() ends the JVM's children too
                            start_new_session=True,
                            # and if this process dies without stop() (killed), so does the cluster
                            preexec_fn=_die_with_parent,
                        )
                    )
            self._await_workers()
        except BaseException:
            self.stop()
            raise

    def _await_workers(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            try:
                if len(workers_of(self.ui)) == self.workers:
                    return
            except BackendUnavailable:
                pass
            dead = [n for n, p in enumerate(self.processes) if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                tail = (self.root / f"process{dead[0] if dead else 0}.log").read_text(errors="replace")[-600:]
                why = (
                    f"process {dead[0]} exited"
                    if dead
                    else f"not all workers registered in {self.start_timeout_s:g} s"
                )
                raise BackendUnavailable(self.uri, f"the local Spark cluster did not come up: {why}\n{tail}")
            time.sleep(0.3)

    def stop(self, grace_s: float = 15.0) -> None:
        """End every process group of the cluster (idempotent)."""
        for process in self.processes:
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        self.processes = []

    def worker_states(self) -> list[WorkerState]:
        """The workers as the master reports them now."""
        return workers_of(self.ui)


def _die_with_parent() -> None:
    """In the child before ``exec``: SIGTERM when the process that started it dies (Linux only).

    ``spark-class`` ends in ``exec java …``, and the signal survives ``exec``, so a master or
    worker left behind by a killed study or test session stops on its own. (Linux sends it when
    the starting *thread* ends: start a cluster from the thread that owns it.)
    """
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def _spark_home() -> Path:
    try:
        import pyspark
    except ImportError as exc:
        raise ConfigError("the Spark study needs PySpark: install sparkhu[spark]") from exc
    return Path(pyspark.__file__).parent
