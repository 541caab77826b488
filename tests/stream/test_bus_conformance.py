"""One conformance suite for every bus: the embedded SQLite log and Kafka (a real Tansu broker).

Each test runs once per implementation (the ``any_bus`` fixture); a new backend is correct
by passing it. Topic and group names are fresh per test because the session's broker keeps
earlier tests' topics.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

import pytest

from sparkhu.errors import BusError
from sparkhu.series import points
from sparkhu.stream import Bus, Consumer, Message, partition_for
from sparkhu.stream.codecs import decode_points, publish_points

Names = Callable[[str], str]


def drain(consumer: Consumer, expect: int, *, limit: float = 15.0) -> list[Message]:
    """Poll until ``expect`` messages arrived (or ``limit`` seconds passed), then briefly for extras."""
    got: list[Message] = []
    deadline = time.monotonic() + limit
    while len(got) < expect and time.monotonic() < deadline:
        got.extend(consumer.poll(max_messages=500, timeout=0.2))
    got.extend(consumer.poll(max_messages=500, timeout=0.2))
    return got


def positions(messages: Sequence[Message]) -> dict[tuple[str, int], int]:
    """Next offset after ``messages`` per (topic, partition), as a commit of them stores it."""
    after: dict[tuple[str, int], int] = {}
    for m in messages:
        after[(m.topic, m.partition)] = max(after.get((m.topic, m.partition), 0), m.offset + 1)
    return after


def test_round_trip_keeps_keys_values_headers_and_dense_offsets(any_bus: Bus, unique: Names) -> None:
    topic = unique("t")
    any_bus.create_topic(topic)
    records = [(f"k{i % 5}".encode(), f"v{i}".encode()) for i in range(40)]
    before = int(time.time() * 1000) - 1000
    any_bus.produce(topic, records[:25], headers={"codec": b"text", "bin": b"\x00\xff"})
    any_bus.produce(topic, records[25:])
    with any_bus.consumer(unique("g"), [topic]) as consumer:
        got = drain(consumer, 40)
    assert sorted((m.key, m.value) for m in got) == sorted(records)
    offsets = defaultdict(list)
    for m in got:
        offsets[m.partition].append(m.offset)
        assert m.topic == topic and m.timestamp_ms >= before
        assert m.headers == ({"codec": b"text", "bin": b"\x00\xff"} if int(m.value[1:]) < 25 else {})
    assert all(sorted(o) == list(range(len(o))) for o in offsets.values())
    assert any_bus.end_offsets(topic) == {p: len(offsets.get(p, [])) for p in range(4)}


def test_a_key_always_goes_to_its_partition_for_in_order(any_bus: Bus, unique: Names) -> None:
    topic = unique("t")
    any_bus.create_topic(topic, 3)
    for round_ in range(4):
        any_bus.produce(topic, [(f"series-{i}".encode(), f"{i}:{round_}".encode()) for i in range(12)])
    any_bus.produce(topic, [(None, b"no key")])
    table = points("ampds2/electricity/WHE.P", [0, 60_000_000], [1.0, 2.0])
    assert publish_points(any_bus, topic, table) == 1
    with any_bus.consumer(unique("g"), [topic]) as consumer:
        got = drain(consumer, 50)
    assert len(got) == 50
    by_key: dict[bytes | None, list[Message]] = defaultdict(list)
    for m in sorted(got, key=lambda m: (m.partition, m.offset)):
        by_key[m.key].append(m)
    for key, messages in by_key.items():
        assert {m.partition for m in messages} == {partition_for(key, 3)}
        if key is not None and key.startswith(b"series-"):
            assert [m.value.split(b":")[1] for m in messages] == [b"0", b"1", b"2", b"3"]
    assert by_key[None][0].partition == 0
    assert decode_points(by_key[b"ampds2/electricity/WHE.P"][0].value).equals(table)


def test_a_new_member_resumes_after_the_commit_and_gets_the_rest_again(any_bus: Bus, unique: Names) -> None:
    topic, group = unique("t"), unique("g")
    any_bus.create_topic(topic, 2)
    any_bus.produce(topic, [(f"k{i}".encode(), str(i).encode()) for i in range(30)])
    with any_bus.consumer(group, [topic]) as first:
        everything = drain(first, 30)
        done = sorted(everything, key=lambda m: (m.partition, m.offset))[:10]
        first.commit(done)
        assert first.committed() == positions(done)
    with any_bus.consumer(group, [topic]) as second:
        assert second.committed() == positions(done)
        again = drain(second, 20)
        assert sorted(int(m.value) for m in again) == sorted(
            int(m.value) for m in everything if m not in done
        )
        second.commit()
        assert second.committed() == {(topic, p): end for p, end in any_bus.end_offsets(topic).items()}
    with any_bus.consumer(group, [topic]) as third:
        assert third.poll(timeout=0.5 if isinstance(third, type(second)) else 0) == []


def settle(
    members: Sequence[Consumer], partitions: int, *, limit: float = 15.0
) -> list[set[tuple[str, int]]]:
    """Poll every member until each owns a share and together they own all ``partitions``."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for member in members:
            assert member.poll(timeout=0.05) == []  # the topic is still empty
        shares = [set(member.assignment()) for member in members]  # type: ignore[attr-defined]
        if all(shares) and sum(len(s) for s in shares) == partitions == len(set().union(*shares)):
            return shares
    raise AssertionError(f"group did not settle: {[m.assignment() for m in members]}")  # type: ignore[attr-defined]


def test_two_members_split_the_partitions_and_one_takes_over_without_loss(
    any_bus: Bus, unique: Names
) -> None:
    topic, group = unique("t"), unique("g")
    any_bus.create_topic(topic, 4)
    leaving, staying = any_bus.consumer(group, [topic]), any_bus.consumer(group, [topic])
    try:
        mine, theirs = settle([leaving, staying], 4)
        assert len(mine) == len(theirs) == 2
        any_bus.produce(topic, [(f"k{i}".encode(), str(i).encode()) for i in range(80)])
        got_leaving, got_staying = drain(leaving, 1), drain(staying, 1)
        got_leaving += drain(leaving, 0)
        got_staying += drain(staying, 0)
        assert {(m.topic, m.partition) for m in got_leaving} <= mine
        assert {(m.topic, m.partition) for m in got_staying} <= theirs
        assert sorted(int(m.value) for m in got_leaving + got_staying) == list(range(80))
        leaving.commit()
        staying.commit()

        any_bus.produce(topic, [(f"k{i}".encode(), str(i).encode()) for i in range(80, 120)])
        in_mine = sum((topic, partition_for(f"k{i}".encode(), 4)) in mine for i in range(80, 120))
        polled = drain(leaving, in_mine)
        assert len(polled) == in_mine
        leaving.commit(polled[: in_mine // 2])  # committed work: never handed out again
        leaving.close()
        finished = covered(polled[: in_mine // 2], polled)
        expected = set(range(80, 120)) - {int(m.value) for m in finished}
        taken_over: list[Message] = []
        deadline = time.monotonic() + 20
        while not expected <= {int(m.value) for m in taken_over} and time.monotonic() < deadline:
            taken_over += staying.poll(max_messages=500, timeout=0.2)  # duplicates: uncommitted, re-read
        taken_over += staying.poll(max_messages=500, timeout=0.2)
        staying.commit()
        assert {int(m.value) for m in taken_over} == expected
        assert set(staying.assignment()) == mine | theirs  # type: ignore[attr-defined]
        assert staying.committed() == {(topic, p): end for p, end in any_bus.end_offsets(topic).items()}
    finally:
        leaving.close()
        staying.close()


def covered(done: Sequence[Message], polled: Sequence[Message]) -> list[Message]:
    """Polled messages a commit of ``done`` covers (below the committed position)."""
    after = positions(done)
    return [m for m in polled if after.get((m.topic, m.partition), 0) > m.offset]


def test_seek_to_beginning_rereads_what_was_not_committed(any_bus: Bus, unique: Names) -> None:
    topic = unique("t")
    any_bus.create_topic(topic, 1)
    any_bus.produce(topic, [(None, str(i).encode()) for i in range(10)])
    with any_bus.consumer(unique("g"), [topic]) as consumer:
        first = drain(consumer, 10)
        consumer.commit(first[:4])
        consumer.seek_to_beginning()
        assert [m.offset for m in drain(consumer, 6)] == list(range(4, 10))
        assert consumer.committed() == {(topic, 0): 4}
        consumer.commit()
        assert consumer.committed() == {(topic, 0): 10}


def test_end_offsets_give_the_lag_of_a_group(any_bus: Bus, unique: Names) -> None:
    topic = unique("t")
    any_bus.create_topic(topic, 2)
    assert any_bus.end_offsets(topic) == {0: 0, 1: 0}
    for batch in range(3):
        any_bus.produce(topic, [(f"k{i}".encode(), b"x") for i in range(10 * batch, 10 * batch + 10)])
    ends = any_bus.end_offsets(topic)
    assert sum(ends.values()) == 30
    assert ends == {p: sum(partition_for(f"k{i}".encode(), 2) == p for i in range(30)) for p in (0, 1)}
    with any_bus.consumer(unique("g"), [topic]) as consumer:
        assert consumer.committed() == {}
        got = drain(consumer, 30)
        consumer.commit(got[:7])
        lag = {p: end - consumer.committed().get((topic, p), 0) for p, end in ends.items()}
    assert sum(lag.values()) == 23


def test_poll_returns_as_soon_as_a_message_arrives(any_bus: Bus, unique: Names) -> None:
    topic = unique("t")
    any_bus.create_topic(topic, 1)
    with any_bus.consumer(unique("g"), [topic]) as consumer:
        consumer.committed()  # joined
        started = time.monotonic()
        assert consumer.poll(timeout=0.3) == []
        assert 0.25 <= time.monotonic() - started < 2.0
        timer = threading.Timer(0.2, any_bus.produce, args=(topic, [(None, b"late")]))
        timer.start()
        started = time.monotonic()
        got = consumer.poll(max_messages=100, timeout=8)
        timer.join()
        assert [m.value for m in got] == [b"late"] and time.monotonic() - started < 3


def test_a_5_mb_payload_round_trips(any_bus: Bus, unique: Names) -> None:
    topic = unique("t")
    any_bus.create_topic(topic, 2)
    payload = os.urandom(5 << 20)
    any_bus.produce(topic, [(b"big", payload), (b"big", b"small")])
    with any_bus.consumer(unique("g"), [topic]) as consumer:
        got = drain(consumer, 2)
    assert [m.value for m in got] == [payload, b"small"]


def test_unknown_topics_and_malformed_calls_are_bus_errors(any_bus: Bus, unique: Names) -> None:
    topic, nope = unique("t"), unique("nope")
    any_bus.create_topic(topic, 2)
    any_bus.create_topic(topic, 2)  # idempotent
    any_bus.create_topic(topic)  # the default count does not contradict
    assert any_bus.partitions(topic) == 2
    with pytest.raises(BusError, match=rf"unknown topic '{nope}'.*create_topic"):
        any_bus.partitions(nope)
    with pytest.raises(BusError, match=f"unknown topic '{nope}'"):
        any_bus.produce(nope, [(None, b"x")])
    with pytest.raises(BusError, match=f"unknown topic '{nope}'"):
        any_bus.end_offsets(nope)
    with pytest.raises(BusError, match=f"unknown topic '{nope}'"):
        any_bus.consumer("g", [nope])
    with pytest.raises(BusError, match=f"unknown topic '{nope}'"):  # lookups never create topics
        any_bus.partitions(nope)
    with pytest.raises(BusError, match="topic name 'bad topic!' is invalid"):
        any_bus.create_topic("bad topic!")
    with pytest.raises(BusError, match="already has 2 partitions, not 3"):
        any_bus.create_topic(topic, 3)
    with pytest.raises(BusError, match="partitions must be an integer"):
        any_bus.create_topic(unique("u"), 0)
    with pytest.raises(BusError, match="record 1 is not a"):
        any_bus.produce(topic, [(None, b"ok"), ("str key", b"x")])  # type: ignore[list-item]
    with pytest.raises(BusError, match="headers must map str to bytes"):
        any_bus.produce(topic, [(None, b"ok")], headers={"h": "text"})  # type: ignore[dict-item]
    with pytest.raises(BusError, match="topics must be a non-empty list"):
        any_bus.consumer("g", topic)
    with pytest.raises(BusError, match="group name '' must be"):
        any_bus.consumer("", [topic])
    consumer = any_bus.consumer(unique("g"), [topic])
    with pytest.raises(BusError, match="max_messages must be an integer >= 1"):
        consumer.poll(max_messages=0)
    consumer.close()
    consumer.close()  # idempotent
    with pytest.raises(BusError, match="is closed"):
        consumer.poll()
    assert any_bus.end_offsets(topic) == {0: 0, 1: 0}
    any_bus.close()
    with pytest.raises(BusError, match="is closed"):
        any_bus.partitions(topic)
