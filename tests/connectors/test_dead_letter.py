"""The dead-letter topic beside the quarantine dataset: a lake sink with ``dead_letter_topic`` copies each
message that held a quarantined record, as it came, to that topic (with where it came from)."""

from __future__ import annotations

from pathlib import Path

from sparkhu.connectors import sink_settings
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import PredictionStore
from sparkhu.stream.codecs import publish_points
from sparkhu.stream.sqlite import SqliteBus


class Backends:
    def __init__(self, tmp: Path) -> None:
        self.lake = Lake(str(tmp / "lake"))
        self.catalog = Catalog(f"sqlite:///{tmp}/catalog.db")
        self.bus = SqliteBus(f"sqlite:///{tmp}/bus.db")
        self.predictions = PredictionStore(self.catalog.engine)


def test_rejected_messages_go_to_the_dead_letter_topic(tmp_path: Path) -> None:
    backends = Backends(tmp_path)
    bus = backends.bus
    bus.create_topic("meters", 1)
    publish_points(bus, "meters", points("a/b/c", [0, 60_000_000], [1.0, 2.0]))
    bus.produce("meters", [(b"k", b"oops")])
    spec = sink_settings({"name": "lake2", "kind": "lake", "dead_letter_topic": "{topic}.dlq", "group": "g2"})
    sink = spec.open(backends, "meters", "meters")
    sink.run_once(timeout=1.0)
    sink.close()
    assert backends.lake.read("raw", "meters").num_rows == 2
    assert backends.lake.read_quarantine("meters").num_rows == 1
    with bus.consumer("reader", ["meters.dlq"]) as consumer:
        (dead,) = consumer.poll(timeout=1.0)
    assert dead.value == b"oops" and dead.key == b"k"
    assert dead.headers["dlq.topic"] == b"meters" and dead.headers["dlq.offset"] == b"1"
    bus.close()
    backends.catalog.close()
