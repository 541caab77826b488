"""The embedded SQLite bus: log, partitions, consumer groups, processes, retention, errors."""

from __future__ import annotations

import pickle
import sqlite3
import threading
import time
from collections import defaultdict
from multiprocessing.context import SpawnContext
from multiprocessing.queues import Queue
from pathlib import Path

import pytest

from sparkhu.errors import BusError, ConfigError
from sparkhu.stream import Message, open_bus, partition_for
from sparkhu.stream.sqlite import SqliteBus
from sparkhu.stream.sqlite_group import assign


def drain(consumer, *, expect: int | None = None, rounds: int = 50) -> list[Message]:
    """Poll until nothing more comes (or ``expect`` messages arrived)."""
    got: list[Message] = []
    for _ in range(rounds):
        batch = consumer.poll(max_messages=100, timeout=0.05)
        got.extend(batch)
        if (expect is not None and len(got) >= expect) or (expect is None and not batch):
            break
    return got


def test_round_trip_keeps_keys_values_headers_and_dense_offsets(bus: SqliteBus) -> None:
    bus.create_topic("t")
    records = [(f"k{i % 5}".encode(), f"v{i}".encode()) for i in range(40)]
    before = int(time.time() * 1000)
    bus.produce("t", records[:25], headers={"codec": b"text", "bin": b"\x00\xff"})
    bus.produce("t", records[25:])
    with bus.consumer("g", ["t"]) as consumer:
        got = drain(consumer, expect=40)
    assert sorted((m.key, m.value) for m in got) == sorted(records)
    by_partition = defaultdict(list)
    for m in got:
        by_partition[m.partition].append(m.offset)
        assert m.topic == "t" and m.timestamp_ms >= before
        assert m.headers == ({"codec": b"text", "bin": b"\x00\xff"} if int(m.value[1:]) < 25 else {})
    assert all(offsets == list(range(len(offsets))) for offsets in by_partition.values())
    assert bus.end_offsets("t") == {p: len(by_partition.get(p, [])) for p in range(4)}


def test_a_key_always_goes_to_the_same_partition_in_order(bus: SqliteBus) -> None:
    bus.create_topic("t", 3)
    for round_ in range(5):
        bus.produce("t", [(f"series-{i}".encode(), f"{i}:{round_}".encode()) for i in range(12)])
    bus.produce("t", [(None, b"no key")])
    with bus.consumer("g", ["t"]) as consumer:
        got = drain(consumer, expect=61)
    seen: dict[bytes | None, list[Message]] = defaultdict(list)
    for m in sorted(got, key=lambda m: (m.partition, m.offset)):
        seen[m.key].append(m)
    assert len(seen) == 13
    for key, messages in seen.items():
        assert {m.partition for m in messages} == {partition_for(key, 3)}
        if key is not None:
            assert [m.value.split(b":")[1] for m in messages] == [b"0", b"1", b"2", b"3", b"4"]
    assert seen[None][0].partition == 0


def test_two_members_split_the_partitions_and_read_each_message_once(bus: SqliteBus) -> None:
    bus.create_topic("t", 4)
    bus.create_topic("u", 2)
    first = bus.consumer("g", ["t", "u"])
    second = bus.consumer("g", ["t", "u"])
    a, b = first.assignment(), second.assignment()
    assert sorted(a + b) == [("t", 0), ("t", 1), ("t", 2), ("t", 3), ("u", 0), ("u", 1)]
    assert len(a) == len(b) == 3 and not set(a) & set(b)
    bus.produce("t", [(f"k{i}".encode(), str(i).encode()) for i in range(60)])
    bus.produce("u", [(f"k{i}".encode(), str(100 + i).encode()) for i in range(20)])
    got_a, got_b = drain(first), drain(second)
    assert {(m.topic, m.partition) for m in got_a} <= set(a)
    assert {(m.topic, m.partition) for m in got_b} <= set(b)
    assert sorted(int(m.value) for m in got_a + got_b) == [*range(60), *range(100, 120)]
    first.close()
    second.close()


def test_assignment_is_round_robin_over_sorted_members_and_partitions() -> None:
    assert assign({"m2": ["a"], "m1": ["a", "b"]}, {"b": 2, "a": 2}) == {
        "m1": [("a", 0), ("b", 0), ("b", 1)],
        "m2": [("a", 1)],
    }
    assert assign({"solo": ["a"]}, {"a": 3}) == {"solo": [("a", 0), ("a", 1), ("a", 2)]}


def test_a_closing_member_hands_over_from_the_committed_offsets(bus: SqliteBus) -> None:
    bus.create_topic("t", 4)
    bus.produce("t", [(f"k{i}".encode(), str(i).encode()) for i in range(80)])
    leaving = bus.consumer("g", ["t"])
    staying = bus.consumer("g", ["t"])
    mine = set(leaving.assignment())
    first = leaving.poll(max_messages=10, timeout=1)
    leaving.commit(first)
    uncommitted = drain(leaving)
    assert uncommitted and {(m.topic, m.partition) for m in first + uncommitted} <= mine
    kept = drain(staying)
    staying.commit()
    leaving.close()
    taken_over = drain(staying)
    assert {(m.topic, m.partition) for m in taken_over} == mine
    assert sorted(m.value for m in taken_over) == sorted(m.value for m in uncommitted)
    assert sorted(int(m.value) for m in first + kept + taken_over) == list(range(80))
    staying.commit()
    assert staying.committed() == {("t", p): end for p, end in bus.end_offsets("t").items()}
    staying.close()


def test_a_silent_member_is_evicted_and_its_late_commit_ignored(bus: SqliteBus) -> None:
    bus.create_topic("t", 2)
    bus.produce("t", [(b"a", b"1"), (b"b", b"2"), (b"c", b"3"), (b"d", b"4")])
    zombie = bus.consumer("g", ["t"])
    alive = bus.consumer("g", ["t"])
    lost = zombie.assignment()
    assert len(lost) == 1
    polled = drain(zombie)
    assert polled
    time.sleep(0.7)  # longer than the 0.5 s session: the zombie stopped heartbeating
    recovered = drain(alive)
    assert alive.assignment() == [("t", 0), ("t", 1)]
    assert sorted(m.value for m in polled) == sorted(
        m.value for m in recovered if (m.topic, m.partition) in lost
    )
    zombie.commit(polled)  # too late: it was replaced, so nothing is committed
    assert alive.committed() == {}
    assert zombie.assignment() in ([("t", 0)], [("t", 1)])  # it rejoined: the group rebalances
    zombie.close()
    alive.close()


def test_poll_returns_nothing_of_a_partition_lost_to_a_new_member(bus: SqliteBus) -> None:
    bus.create_topic("t", 2)
    keys = {partition_for(k, 2): k for k in (b"a", b"b", b"c", b"d")}
    owner = bus.consumer("g", ["t"])
    assert owner.assignment() == [("t", 0), ("t", 1)]
    newcomer = bus.consumer("g", ["t"])
    bus.produce("t", [(keys[0], b"zero"), (keys[1], b"one")])
    got = drain(owner)
    assert [(m.topic, m.partition) for m in got] == owner.assignment()
    assert [(m.topic, m.partition) for m in drain(newcomer)] == newcomer.assignment()
    owner.close()
    newcomer.close()


def test_seek_to_beginning_rereads_what_was_not_committed(bus: SqliteBus) -> None:
    bus.create_topic("t", 1)
    bus.produce("t", [(None, str(i).encode()) for i in range(10)])
    with bus.consumer("g", ["t"]) as consumer:
        consumer.commit(consumer.poll(max_messages=4, timeout=1))
        assert len(drain(consumer)) == 6
        consumer.seek_to_beginning()
        assert [m.offset for m in drain(consumer)] == list(range(4, 10))
        assert consumer.committed() == {("t", 0): 4}
        consumer.commit()
        assert consumer.committed() == {("t", 0): 10}
    assert bus.end_offsets("t") == {0: 10}


def test_poll_waits_for_new_messages_up_to_its_timeout(bus: SqliteBus) -> None:
    bus.create_topic("t", 1)
    with bus.consumer("g", ["t"]) as consumer:
        started = time.monotonic()
        assert consumer.poll(timeout=0.2) == []
        assert 0.18 <= time.monotonic() - started < 1.0
        timer = threading.Timer(0.1, bus.produce, args=("t", [(None, b"late")]))
        timer.start()
        started = time.monotonic()
        got = consumer.poll(timeout=5)
        timer.join()
        assert [m.value for m in got] == [b"late"] and time.monotonic() - started < 2


def test_threads_producing_at_once_get_dense_offsets(bus: SqliteBus) -> None:
    bus.create_topic("t", 2)

    def produce(worker: int) -> None:
        for batch in range(10):
            bus.produce(
                "t", [(f"w{worker}-{i}".encode(), f"{worker}/{batch}/{i}".encode()) for i in range(5)]
            )

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(bus.end_offsets("t").values()) == 200
    with bus.consumer("g", ["t"]) as consumer:
        got = drain(consumer, expect=200)
    assert len({m.value for m in got}) == 200
    for partition in (0, 1):
        offsets = sorted(m.offset for m in got if m.partition == partition)
        assert offsets == list(range(len(offsets)))


def consume_in_child(uri: str, count: int, out: Queue) -> None:
    """Child process: join group "far", read ``count`` messages, commit, send their values back."""
    with SqliteBus(uri) as bus, bus.consumer("far", ["t"]) as consumer:
        out.put("ready")
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            batch = consumer.poll(max_messages=50, timeout=0.5)
            got.extend(m.value for m in batch)
            consumer.commit(batch)
        out.put(got)


def produce_in_child(bus: SqliteBus, worker: int) -> None:
    """Child process: produce 20 batches through a pickled bus."""
    for batch in range(20):
        bus.produce("t", [(f"{worker}-{i}".encode(), f"{worker}/{batch}/{i}".encode()) for i in range(10)])


def test_a_consumer_in_another_process_reads_while_this_one_produces(
    bus: SqliteBus, bus_uri: str, spawn: SpawnContext
) -> None:
    bus.create_topic("t", 4)
    out = spawn.Queue()
    child = spawn.Process(target=consume_in_child, args=(bus_uri, 100, out))
    child.start()
    try:
        assert out.get(timeout=30) == "ready"
        for batch in range(10):
            bus.produce("t", [(f"k{i}".encode(), f"{batch}-{i}".encode()) for i in range(10)])
            time.sleep(0.01)
        got = out.get(timeout=30)
    finally:
        child.join(timeout=30)
    assert child.exitcode == 0
    assert sorted(got) == sorted(f"{b}-{i}".encode() for b in range(10) for i in range(10))
    with bus.consumer("far", ["t"]) as consumer:
        assert consumer.committed() == {("t", p): end for p, end in bus.end_offsets("t").items()}


def test_processes_producing_at_once_never_collide(bus: SqliteBus, spawn: SpawnContext) -> None:
    bus.create_topic("t", 3)
    assert pickle.loads(pickle.dumps(bus)).uri == bus.uri
    children = [spawn.Process(target=produce_in_child, args=(bus, w)) for w in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)
    assert [child.exitcode for child in children] == [0, 0, 0]
    with bus.consumer("g", ["t"]) as consumer:
        got = drain(consumer, expect=600)
    assert len({m.value for m in got}) == 600
    for partition in range(3):
        offsets = sorted(m.offset for m in got if m.partition == partition)
        assert offsets == list(range(len(offsets)))


def test_committed_and_end_offsets_give_the_lag(bus: SqliteBus) -> None:
    bus.create_topic("t", 2)
    bus.produce("t", [(f"k{i}".encode(), b"x") for i in range(30)])
    ends = bus.end_offsets("t")
    assert sum(ends.values()) == 30
    with bus.consumer("g", ["t"]) as consumer:
        assert consumer.committed() == {}
        batch = consumer.poll(max_messages=7, timeout=1)
        consumer.commit(batch)
        committed = consumer.committed()
        assert sum(committed.values()) == 7
        lag = {p: end - committed.get(("t", p), 0) for p, end in ends.items()}
        assert sum(lag.values()) == 23
    assert bus.group_offsets("g", "t") == {p: o for (_, p), o in committed.items()}
    assert bus.group_offsets("other", "t") == {}


def test_retention_deletes_old_messages_without_reusing_offsets(bus: SqliteBus) -> None:
    bus.create_topic("t", 1)
    bus.produce("t", [(None, str(i).encode()) for i in range(10)])
    assert bus.truncate("t", {0: 4}) == 4
    assert bus.beginning_offsets("t") == {0: 4}
    time.sleep(0.01)
    assert bus.delete_before("t", int(time.time() * 1000)) == 6
    assert bus.beginning_offsets("t") == {0: 10} and bus.end_offsets("t") == {0: 10}
    bus.produce("t", [(None, b"new")])
    with bus.consumer("g", ["t"]) as consumer:
        assert [(m.offset, m.value) for m in drain(consumer)] == [(10, b"new")]
    with pytest.raises(BusError, match="no partition"):
        bus.truncate("t", {3: 1})


def test_open_bus_picks_sqlite_and_topics_are_listed(bus_uri: str) -> None:
    with open_bus(bus_uri, default_partitions=2) as opened:
        assert isinstance(opened, SqliteBus)
        opened.create_topic("a")
        opened.create_topic("a")  # idempotent
        opened.create_topic("b", 5)
        assert opened.topics() == {"a": 2, "b": 5}
        assert opened.partitions("b") == 5


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("sqlite://", "expected sqlite:///"),
        ("sqlite:///", "expected sqlite:///"),
        ("postgresql://x/y", "expected sqlite:///"),
        ("sqlite:///:memory:", "needs a file shared by processes"),
    ],
)
def test_bad_uris_are_config_errors(uri: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SqliteBus(uri)


def test_a_file_that_is_not_a_database_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(BusError, match=r"junk\.db.*not a database"):
        SqliteBus(f"sqlite:///{path}")


def test_a_held_write_lock_becomes_a_bus_error_naming_the_file(bus_uri: str, tmp_path: Path) -> None:
    with SqliteBus(bus_uri, busy_timeout=0.2) as quick:
        quick.create_topic("t", 1)
        holder = sqlite3.connect(tmp_path / "bus.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(BusError, match=r"bus\.db: produce to 't' failed: database is locked"):
                quick.produce("t", [(None, b"x")])
        finally:
            holder.execute("ROLLBACK")
            holder.close()


def test_malformed_calls_are_bus_errors(bus: SqliteBus) -> None:
    bus.create_topic("t", 2)
    with pytest.raises(BusError, match=r"unknown topic 'nope'.*create_topic"):
        bus.partitions("nope")
    with pytest.raises(BusError, match="unknown topic 'nope'"):
        bus.produce("nope", [(None, b"x")])
    with pytest.raises(BusError, match="unknown topic 'nope'"):
        bus.end_offsets("nope")
    with pytest.raises(BusError, match="unknown topic 'nope'"):
        bus.consumer("g", ["nope"])
    with pytest.raises(BusError, match="topic name 'bad topic!' is invalid"):
        bus.create_topic("bad topic!")
    with pytest.raises(BusError, match="already has 2 partitions, not 3"):
        bus.create_topic("t", 3)
    with pytest.raises(BusError, match="partitions must be an integer"):
        bus.create_topic("u", 0)
    with pytest.raises(BusError, match="record 1 is not a"):
        bus.produce("t", [(None, b"ok"), ("str key", b"x")])  # type: ignore[list-item]
    with pytest.raises(BusError, match="headers must map str to bytes"):
        bus.produce("t", [(None, b"ok")], headers={"h": "text"})  # type: ignore[dict-item]
    with pytest.raises(BusError, match="topics must be a non-empty list"):
        bus.consumer("g", "t")
    with pytest.raises(BusError, match="group name '' must be"):
        bus.consumer("", ["t"])
    consumer = bus.consumer("g", ["t"])
    with pytest.raises(BusError, match="max_messages must be an integer >= 1"):
        consumer.poll(max_messages=0)
    consumer.close()
    consumer.close()  # idempotent
    with pytest.raises(BusError, match="is closed"):
        consumer.poll()
    assert bus.end_offsets("t") == {0: 0, 1: 0}
    late = bus.consumer("g", ["t"])
    bus.close()
    late.close()  # after its bus: nothing to do, no error
    with pytest.raises(BusError, match=r"bus\.db is closed"):
        bus.partitions("t")
