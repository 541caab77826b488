"""The shared consumer loop: exactly the stored offsets committed, seek back before prepare, retry after."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from sparkhu.connectors.consume import Batch, ConsumerLoop
from sparkhu.errors import ConnectorError, LakeError
from sparkhu.series import points
from sparkhu.stream.codecs import JsonDecoder, encode_arrow
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


# ---- poison messages (issue 10, item 2): quarantined, committed past, never read again


def test_poison_messages_are_quarantined_committed_and_handed_to_the_dead_letter_hook(bus: SqliteBus) -> None:
    publish(bus, 0)
    poison = [
        bytes.fromhex("ffffffff00000080"),  # pyarrow raises OSError: negative metadata length
        encode_arrow(points("a/b/c", [253_370_764_800_000_000], [1.0])),  # 9999-01-01: no lake partition
        encode_arrow(points(["a/b/c", "a/b/c"], [60_000_000, 120_000_000], [float("inf"), 7.0])),
    ]
    bus.produce(TOPIC, [(None, value) for value in poison])
    publish(bus, 3)
    stored: list[pa.Table] = []
    quarantined: list[pa.Table] = []
    dead: list[int] = []
    loop = ConsumerLoop(
        bus,
        TOPIC,
        group=GROUP,
        name="test loop",
        store=stored.append,
        quarantine=quarantined.append,
        dead_letter=lambda messages: dead.extend(m.offset for m in messages),
    )
    batch = loop.run_once(timeout=1)
    loop.close()
    assert values(stored[0]) == [0.0, 7.0, 3.0]  # every valid point, the one beside the bad one too
    assert committed(bus) == 5 and dead == [1, 2, 3]
    rows = quarantined[0].to_pylist()
    assert [(r["location"], r["field"]) for r in rows] == [
        ("offset 1", None),
        ("offset 2 row 1", "ts"),
        ("offset 3 row 1", "value"),
    ]
    assert "negative metadata length" in rows[0]["reason"] and "years 1 to 9998" in rows[1]["reason"]
    assert rows[2]["reason"] == "not a finite number" and '"value": Infinity' in rows[2]["raw"]
    assert [m.offset for m in batch.readable] == [0, 3, 4]
    restarted = ConsumerLoop(bus, TOPIC, group=GROUP, name="test loop", store=stored.append)
    assert not restarted.run_once(timeout=0.2).messages  # nothing to read again after a restart
    restarted.close()


class _Fragile(JsonDecoder):
    """A JSON decoder with a bug that one message triggers (a third-party decoder, say)."""

    def decode(self, values, sources):  # type: ignore[no-untyped-def]
        if any(b"boom" in bytes(v) for v in values):
            raise RuntimeError("decoder bug")
        return super().decode(values, sources)


def test_a_decoder_that_raises_costs_only_the_message_that_made_it(bus: SqliteBus) -> None:
    bus.produce(
        TOPIC,
        [
            (None, b'{"series_id": "a/b/c", "ts": 0, "value": 1}'),
            (None, b'{"series_id": "a/b/c", "ts": 60000, "value": "boom"}'),
            (None, b'{"series_id": "a/b/c", "ts": 120000, "value": 3}'),
        ],
    )
    stored: list[pa.Table] = []
    quarantined: list[pa.Table] = []
    loop = ConsumerLoop(
        bus, TOPIC, group=GROUP, name="test loop", store=stored.append, quarantine=quarantined.append,
        json_decoder=_Fragile(),
    )  # fmt: skip
    loop.run_once(timeout=1)
    loop.close()
    assert values(stored[0]) == [1.0, 3.0] and committed(bus) == 3
    assert quarantined[0].to_pylist()[0]["reason"] == "cannot decode: RuntimeError: decoder bug"


CORRUPT_PROBE = """
import sys
from sparkhu.connectors.consume import decode
from sparkhu.series import points
from sparkhu.stream.base import Message
from sparkhu.stream.codecs import encode_arrow

table = points(["a/b/c", "x/y/z"], [0, 60_000_000], [1.0, float("nan")])
data = bytearray(encode_arrow(table, compression=None))
data[486] = 220  # one byte of the dictionary's offsets: a string now ends 14 MB past its buffer
batch = decode([Message("t", 0, 0, None, bytes(data), 0)])
print(batch.points.num_rows, batch.quarantine.column("reason")[0].as_py())
"""


def test_a_message_whose_offsets_point_outside_its_buffers_is_quarantined_not_a_crash() -> None:
    """Found by tests/fuzz: without full validation, reading such a message killed the process (SIGSEGV)."""
    done = subprocess.run([sys.executable, "-c", CORRUPT_PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-500:]}"
    assert done.stdout.startswith("0 not a table of points") and "out of bounds" in done.stdout
