"""Fixtures shared by every test folder, and the CI rule: in CI a skip is a failure.

One test suite, two configurations: ``--sparkhu-config=embedded`` (the default: SQLite catalog,
SQLite bus, local engine in a temporary home) or ``--sparkhu-config=distributed`` (or the
environment variable ``SPARKHU_TEST_CONFIG``): the catalog and prediction store on PostgreSQL
(127.0.0.1:5432, user ``postgres``; a database of the session, a fresh schema per test), the
bus on a Kafka-protocol broker (Tansu, memory storage, a fresh broker per test so that fixed
topic and group names never meet an earlier test's) and the engine on Spark ``local[2]``.
The ``settings`` fixture follows the configuration, and ``distributed_env`` gives the same
backends as ``SPARKHU_*`` variables for tests that start ``sparkhu`` in a subprocess. Tests
marked ``integration`` run in both (``make test`` runs them again with ``distributed``).
``influx_server`` starts a real InfluxDB 1.x (Debian's ``influxd``) for the connector tests.
``spark_cluster`` is the session's one standalone Spark cluster (tests/engine and tests/sparkstudy).
:func:`run_until` runs a ``sparkhu up`` until what a test asserts has happened, then stops it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sparkhu.config import Settings

if TYPE_CHECKING:
    from sparkhu.connectors.influx_client import InfluxClient
    from sparkhu.connectors.influx_server import InfluxServer
    from sparkhu.sparkstudy.cluster import LocalCluster

IN_CI = os.environ.get("CI", "").lower() == "true"
CONFIGS = ("embedded", "distributed")
PG_HOST, PG_PORT, PG_USER, PG_ADMIN_DB = "127.0.0.1", 5432, "postgres", "test"
KAFKA_TEST_CONSUMER = {
    "SESSION_TIMEOUT_MS": "1500",
    "HEARTBEAT_INTERVAL_MS": "100",
    "MAX_POLL_INTERVAL_MS": "10000",
    "TOPIC_METADATA_REFRESH_INTERVAL_MS": "1000",
}
"""Short group timeouts for tests (``_`` stands for ``.``): Tansu's join waits half the session timeout."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--sparkhu-config``: the backends the ``settings`` fixture and ``distributed_env`` name."""
    parser.addoption(
        "--sparkhu-config",
        choices=CONFIGS,
        default=os.environ.get("SPARKHU_TEST_CONFIG", "embedded"),
        help="embedded (SQLite + SQLite bus + local engine, default) or distributed "
        "(PostgreSQL + Kafka protocol via Tansu + Spark local[2]); env SPARKHU_TEST_CONFIG",
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A test that would be skipped for a missing service or tool fails in CI instead."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must have every service and tool: {report.longrepr}"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty sparkhu home directory."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def settings(home: Path, distributed_env: dict[str, str]) -> Settings:
    """Settings inside ``home`` for this session's configuration, ignoring the real environment:
    the embedded defaults, or PostgreSQL + Kafka + Spark ``local[2]`` (``--sparkhu-config=distributed``)."""
    return Settings.load(toml_path=None, env={"SPARKHU_HOME": str(home), **distributed_env})


@dataclass(frozen=True)
class Distributed:
    """The distributed backends of one test: a PostgreSQL schema and a Kafka-protocol broker."""

    catalog: str
    bus: str
    engine: str = "local[2]"

    def env(self) -> dict[str, str]:
        """The ``SPARKHU_*`` variables selecting these backends (and fast consumer-group joins)."""
        env = {
            "SPARKHU_STORAGE__CATALOG": self.catalog,
            "SPARKHU_BUS__URI": self.bus,
            "SPARKHU_ENGINE__URI": self.engine,
        }
        env.update({f"SPARKHU_BUS__CONSUMER__{key}": value for key, value in KAFKA_TEST_CONSUMER.items()})
        return env


@pytest.fixture(scope="session")
def sparkhu_config(pytestconfig: pytest.Config) -> str:
    """``embedded`` or ``distributed``: the configuration this session runs the suite in."""
    return str(pytestconfig.getoption("--sparkhu-config"))


@pytest.fixture(scope="session")
def distributed_database(sparkhu_config: str) -> Iterator[str | None]:
    """Distributed only: a PostgreSQL database of the session (dropped at its end); else None."""
    if sparkhu_config != "distributed":
        yield None
        return
    import psycopg

    from sparkhu.stream.tansu import find_tansu

    if find_tansu() is None:
        pytest.skip("distributed configuration: Tansu broker binary missing (install the test extras)")
    try:
        admin = psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_ADMIN_DB, autocommit=True, connect_timeout=5
        )
    except psycopg.OperationalError as exc:
        pytest.skip(f"distributed configuration: PostgreSQL at {PG_HOST}:{PG_PORT} unreachable: {exc}")
    name = f"sparkhu_dist_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def distributed(distributed_database: str | None, tmp_path: Path) -> Iterator[Distributed | None]:
    """Distributed only: a fresh schema in the session's database and a fresh broker; else None."""
    if distributed_database is None:
        yield None
        return
    import psycopg

    from sparkhu.stream.tansu import TansuBroker

    schema = f"t_{uuid.uuid4().hex[:12]}"
    connect = {"host": PG_HOST, "port": PG_PORT, "user": PG_USER, "autocommit": True}
    with psycopg.connect(dbname=distributed_database, **connect) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    catalog = (
        f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{distributed_database}?options=-csearch_path%3D{schema}"
    )
    try:
        with TansuBroker(log=tmp_path / "tansu.log") as broker:
            yield Distributed(catalog=catalog, bus=broker.uri)
    finally:
        with psycopg.connect(dbname=distributed_database, **connect) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def distributed_env(distributed: Distributed | None) -> dict[str, str]:
    """``SPARKHU_*`` variables of this session's configuration, for ``sparkhu`` subprocesses.

    Empty for ``embedded``; add them to a copy of ``os.environ`` (or to a ``Settings.load`` env).
    """
    return distributed.env() if distributed is not None else {}


@pytest.fixture(scope="module")
def influx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """A real InfluxDB 1.x server (Debian's ``influxd``) for a module: its own config file, data, meta
    and WAL folders in tmp, free ports on 127.0.0.1, no system service. Skipped (failed in CI) without it."""
    from sparkhu.connectors.influx_server import InfluxServer, find_influxd

    if find_influxd() is None:
        pytest.skip("influxd missing: install the Debian package `influxdb` (make system-deps)")
    with InfluxServer(tmp_path_factory.mktemp("influxdb")) as server:
        yield server


@pytest.fixture
def influx_db(influx_server: InfluxServer) -> Iterator[tuple[InfluxClient, str]]:
    """A client and a fresh database of its own on the module's InfluxDB (dropped afterwards)."""
    from sparkhu.connectors.influx_client import InfluxClient

    client = InfluxClient(influx_server.url, who="test")
    name = f"t_{uuid.uuid4().hex[:10]}"
    client.execute(f'CREATE DATABASE "{name}"')
    yield client, name
    if influx_server.running:
        client.execute(f'DROP DATABASE "{name}"')


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One standalone Spark cluster for the session: a master and two workers of 1 core and 1 GB
    each on 127.0.0.1, from the pip-installed PySpark, stopped at the end of the session.

    Shared by the engine's and the Spark study's tests (one start-up of three JVMs instead of one
    per folder); a test leaves no application running on it.
    """
    pytest.importorskip("pyspark")
    from sparkhu.sparkstudy.cluster import LocalCluster

    root = tmp_path_factory.mktemp("spark-cluster")
    with LocalCluster(root, workers=2, worker_cores=1, worker_memory="1g") as cluster:
        yield cluster


def run_until(
    argv: Sequence[str],
    env: dict[str, str],
    done: Callable[[str], bool],
    *,
    timeout: float = 120.0,
    poll_s: float = 0.25,
) -> subprocess.CompletedProcess[str]:
    """Run a long-lived command (``sparkhu up``) until ``done(stdout so far)`` holds, then stop it
    with SIGTERM as a user would; the finished process with its exit status and output.

    Instead of a fixed ``--duration``, the run lasts as long as the test's assertion needs. Give
    ``--duration`` in ``argv`` as the upper bound: a condition that never holds ends the run there,
    and the test's assertions then say what was missing. ``done`` raising counts as not done yet
    (a store read while the platform is still creating it).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(list(argv), stdout=out, stderr=err, env=env)
        deadline = time.monotonic() + timeout

        def stdout() -> str:
            out.seek(0)
            return out.read().decode(errors="replace")

        try:
            while process.poll() is None and time.monotonic() < deadline:
                try:
                    finished = done(stdout())
                except Exception:
                    finished = False
                if finished:
                    process.send_signal(signal.SIGTERM)
                    break
                time.sleep(poll_s)
            code = process.wait(max(1.0, deadline - time.monotonic()))
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        err.seek(0)
        return subprocess.CompletedProcess(list(argv), code, stdout(), err.read().decode(errors="replace"))
