"""The shared consumer loop: exactly the stored offsets committed, seek back before prepare, retry after."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from sparkhu.connectors.consume import Batch, ConsumerLoop
from sparkhu.errors import ConnectorError, LakeError
from sparkhu.series import points
from sparkhu.stream.codecs import encode_arrow
from sparkhu.stream.sqlite import SqliteBus

TOPIC = "points"
GROUP = "test"


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[SqliteBus]:
    with SqliteBus(f"sqlite:///{tmp_path / 'bus.db'}") as opened:
        opened.create_topic(TOPIC, 1)
        yield opened


def publish(bus: SqliteBus, *minutes: int) -> None:
    """One message per minute: a point of ``a/b/c`` valued the minute."""
    bus.produce(TOPIC, [(None, encode_arrow(points("a/b/c", [m * 60_000_000], [float(m)]))) for m in minutes])


def committed(bus: SqliteBus) -> int:
    return bus.group_offsets(GROUP, TOPIC).get(0, 0)


def values(table: pa.Table) -> list[float]:
    return table.column("value").to_pylist()


def test_a_round_commits_exactly_the_messages_it_stored(bus: SqliteBus) -> None:
    publish(bus, 0, 1, 2, 3, 4)
    stored: list[pa.Table] = []
    loop = ConsumerLoop(bus, TOPIC, group=GROUP, name="test loop", store=stored.append, max_messages=2)
    batch = loop.run_once(timeout=1)
    assert [m.offset for m in batch.messages] == [0, 1] and values(stored[0]) == [0.0, 1.0]
    assert committed(bus) == 2  # not the messages the round did not read
    assert loop.run_once(timeout=1).messages and committed(bus) == 4
    loop.close()
    counts = loop.counts()
    assert (counts.batches, counts.messages, counts.points, counts.stored) == (2, 4, 4, 4)
    assert loop.latencies_ms().size == 4


def test_a_failed_quarantine_write_seeks_back_and_the_batch_is_read_again(bus: SqliteBus) -> None:
    publish(bus, 0)
    bus.produce(TOPIC, [(None, b"not arrow")])
    prepared: list[Batch] = []
    quarantined: list[pa.Table] = []

    def quarantine(rows: pa.Table) -> None:
        if not quarantined:
            quarantined.append(rows.slice(0, 0))
            raise LakeError("quarantine/points: the lake is away")
        quarantined.append(rows)

    def prepare(batch: Batch) -> pa.Table:
        prepared.append(batch)
        return batch.points

    loop = ConsumerLoop(
        bus,
        TOPIC,
        group=GROUP,
        name="test loop",
        store=lambda t: None,
        prepare=prepare,
        quarantine=quarantine,
    )
    with pytest.raises(LakeError, match="away"):
        loop.run_once(timeout=1)
    assert not prepared and committed(bus) == 0  # nothing taken in: nothing kept
    batch = loop.run_once(timeout=1)
    assert [m.offset for m in batch.messages] == [0, 1]  # the same messages, read again
    assert quarantined[-1].column("source").to_pylist() == [f"{TOPIC}/0/1"]
    assert quarantined[-1].column("reason").to_pylist()[0].startswith("not a table of points")
    assert len(prepared) == 1 and committed(bus) == 2
    assert loop.counts().quarantined == 1 and [m.offset for m in batch.readable] == [0]
    loop.close()


def test_a_failed_store_is_retried_from_memory_before_the_next_poll(bus: SqliteBus) -> None:
    publish(bus, 0, 1)
    prepared: list[Batch] = []
    stored: list[pa.Table] = []

    def prepare(batch: Batch) -> pa.Table:
        prepared.append(batch)
        return batch.points

    def store(table: pa.Table) -> None:
        if not stored:
            stored.append(table.slice(0, 0))
            raise LakeError("raw/points: disk full")
        stored.append(table)

    loop = ConsumerLoop(bus, TOPIC, group=GROUP, name="test loop", store=store, prepare=prepare)
    with pytest.raises(LakeError, match="disk full"):
        loop.run_once(timeout=1)
    assert committed(bus) == 0
    publish(bus, 2)
    batch = loop.run_once(timeout=1)
    assert values(stored[1]) == [0.0, 1.0] and values(stored[2]) == [2.0]  # the kept batch first
    assert [m.offset for m in batch.messages] == [2]  # and the first batch was not read again
    assert len(prepared) == 2 and committed(bus) == 3
    assert loop.counts().stored == 3
    loop.close()


def test_a_batch_gathers_polls_until_max_points(bus: SqliteBus) -> None:
    publish(bus, *range(10))
    loop = ConsumerLoop(
        bus, TOPIC, group=GROUP, name="test loop", store=lambda t: None, max_points=4, max_wait=60
    )
    batch = loop.fetch(timeout=1)
    assert 4 <= batch.points.num_rows < 10 and committed(bus) == 0  # fetch commits nothing
    loop.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_points": 0}, "test loop: max_points must be an integer >= 1"),
        ({"max_messages": 0}, "test loop: max_messages must be an integer >= 1"),
        ({"max_wait": -1.0}, "test loop: max_wait must be >= 0 seconds"),
    ],
)
def test_bad_settings_are_connector_errors(bus: SqliteBus, kwargs: dict, match: str) -> None:
    with pytest.raises(ConnectorError, match=match):
        ConsumerLoop(bus, TOPIC, group=GROUP, name="test loop", store=lambda t: None, **kwargs)
