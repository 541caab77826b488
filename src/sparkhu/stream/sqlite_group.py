"""Consumer groups of the SQLite bus: membership, heartbeats, assignment and committed offsets.

A member joins when it is created and heartbeats while it polls; a member silent for longer
than its ``session_timeout`` is evicted. Every poll recomputes the assignment from the live
members (:func:`assign`: members sorted by id, round robin over the sorted (topic, partition)
pairs), so a joining, leaving or dying member rebalances the group; a newly assigned
partition resumes from the group's committed offset, and a member never receives messages of
a partition it no longer owns. Commits of partitions a member lost are ignored (their
messages are delivered again to the new owner: at-least-once).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from sparkhu.errors import BusError
from sparkhu.stream.base import Consumer, Message
from sparkhu.timeaxis import US_PER_MS, now_us

if TYPE_CHECKING:
    from sparkhu.stream.sqlite_file import SqliteFile

TopicPartition = tuple[str, int]

_POLL_STEP_S = 0.02


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch (shared by every process on the machine)."""
    return now_us() // US_PER_MS


def assign(
    members: Mapping[str, Sequence[str]], partitions: Mapping[str, int]
) -> dict[str, list[TopicPartition]]:
    """Deterministic round-robin assignment of every (topic, partition) to the members subscribing it.

    >>> assign({"b": ["t"], "a": ["t"]}, {"t": 3})
    {'a': [('t', 0), ('t', 2)], 'b': [('t', 1)]}
    """
    ids = sorted(members)
    result: dict[str, list[TopicPartition]] = {member: [] for member in ids}
    cursor = 0
    for topic in sorted(partitions):
        for partition in range(partitions[topic]):
            for _ in range(len(ids)):
                member = ids[cursor % len(ids)]
                cursor += 1
                if topic in members[member]:
                    result[member].append((topic, partition))
                    break
    return result


class SqliteConsumer(Consumer):
    """A member of a consumer group on a :class:`~sparkhu.stream.sqlite.SqliteBus`. Not thread-safe.

    It joins at creation, heartbeats on every poll (at most every ``session_timeout / 4``)
    and must poll at least once per ``session_timeout`` to keep its partitions.
    """

    def __init__(self, db: SqliteFile, group: str, topics: list[str], session_timeout: float) -> None:
        self.group = group
        self.topics = topics
        self.member_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._db = db
        self._session_ms = max(1, int(session_timeout * 1000))
        self._beat_every_ms = max(1, self._session_ms // 4)
        self._beat_ms = 0
        self._positions: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int | None] = {}
        self._turn = 0
        self._closed = False
        self._conn = self._db.connect()
        self._heartbeat(now_ms())

    def _tx(self, action: str, *, write: bool = False) -> AbstractContextManager[sqlite3.Connection]:
        return self._db.transaction(
            self._conn, f"consumer {self.member_id} of group {self.group!r}: {action}", write=write
        )

    def _check_open(self) -> None:
        if self._closed:
            raise BusError(f"consumer {self.member_id} of group {self.group!r} is closed")

    def _heartbeat(self, now: int) -> None:
        """Stay (or rejoin) in the group and evict silent members; a rejoin forgets local progress."""
        if self._beat_ms and now - self._beat_ms > self._session_ms:
            self._positions.clear()
            self._committed.clear()
        with self._tx("heartbeat", write=True) as conn:
            self._write_heartbeat(conn, now)
        self._beat_ms = now

    def _write_heartbeat(self, conn: sqlite3.Connection, now: int) -> None:
        conn.execute(
            'INSERT INTO group_members ("group", member_id, topics, heartbeat_ms, session_ms) '
            "VALUES (?, ?, ?, ?, ?) "
            'ON CONFLICT ("group", member_id) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms',
            (self.group, self.member_id, json.dumps(self.topics), now, self._session_ms),
        )
        conn.execute(
            'DELETE FROM group_members WHERE "group" = ? AND heartbeat_ms + session_ms < ?', (self.group, now)
        )

    def _rebalance(self, conn: sqlite3.Connection) -> list[TopicPartition]:
        """This member's partitions from the live members; positions of new ones from the commits."""
        rows = conn.execute(
            'SELECT member_id, topics FROM group_members WHERE "group" = ? '
            "AND heartbeat_ms + session_ms >= ?",
            (self.group, now_ms()),
        ).fetchall()
        members = {member: json.loads(topics) for member, topics in rows}
        members[self.member_id] = self.topics
        names = sorted({topic for topics in members.values() for topic in topics})
        marks = ", ".join("?" * len(names))
        counts = dict(conn.execute(f"SELECT name, partitions FROM topics WHERE name IN ({marks})", names))
        owned = assign(members, counts)[self.member_id]
        for lost in set(self._positions) - set(owned):
            del self._positions[lost]
            self._committed.pop(lost, None)
        for tp in owned:
            if tp not in self._positions:
                row = conn.execute(
                    'SELECT next_offset FROM group_offsets WHERE "group" = ? AND topic = ? AND partition = ?',
                    (self.group, *tp),
                ).fetchone()
                self._committed[tp] = None if row is None else int(row[0])
                self._positions[tp] = 0 if row is None else int(row[0])
        return owned

    def assignment(self) -> list[TopicPartition]:
        """The (topic, partition) pairs this member owns now."""
        self._check_open()
        with self._tx("read assignment") as conn:
            return self._rebalance(conn)

    def poll(self, max_messages: int = 1000, timeout: float = 1.0) -> list[Message]:
        """Up to ``max_messages`` messages of owned partitions, waiting up to ``timeout`` s in 20 ms steps."""
        self._check_open()
        if not isinstance(max_messages, int) or max_messages < 1:
            raise BusError(
                f"poll of group {self.group!r}: max_messages must be an integer >= 1, got {max_messages!r}"
            )
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            now = now_ms()
            if now - self._beat_ms >= self._beat_every_ms:
                self._heartbeat(now)
            with self._tx("poll") as conn:
                messages = self._fetch(conn, self._rebalance(conn), max_messages)
            remaining = deadline - time.monotonic()
            if messages or remaining <= 0:
                return messages
            time.sleep(min(_POLL_STEP_S, remaining))

    def _fetch(self, conn: sqlite3.Connection, owned: list[TopicPartition], limit: int) -> list[Message]:
        messages: list[Message] = []
        if not owned:
            return messages
        self._turn = (self._turn + 1) % len(owned)
        for topic, partition in owned[self._turn :] + owned[: self._turn]:
            rows = conn.execute(
                'SELECT "offset", key, ts_ms, headers, value FROM messages '
                'WHERE topic = ? AND partition = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
                (topic, partition, self._positions[(topic, partition)], limit - len(messages)),
            ).fetchall()
            for offset, key, ts_ms, headers, value in rows:
                decoded = {k: v.encode("latin-1") for k, v in json.loads(headers).items()} if headers else {}
                messages.append(Message(topic, partition, offset, key, value, ts_ms, decoded))
            if rows:
                self._positions[(topic, partition)] = rows[-1][0] + 1
            if len(messages) >= limit:
                break
        return messages

    def commit(self, messages: Sequence[Message] | None = None) -> None:
        """Commit the position after ``messages`` (default: all polled); lost partitions are skipped.

        A member that was silent past its session (and so may have been replaced) commits
        nothing: it rejoins and reads again from the group's committed offsets.
        """
        self._check_open()
        if messages is None:
            offsets = {
                tp: pos for tp, pos in self._positions.items() if pos != (self._committed.get(tp) or 0)
            }
        else:
            offsets = {}
            for message in messages:
                tp = (message.topic, message.partition)
                offsets[tp] = max(offsets.get(tp, 0), message.offset + 1)
        now = now_ms()
        if self._beat_ms and now - self._beat_ms > self._session_ms:
            self._heartbeat(now)
            return
        with self._tx("commit", write=True) as conn:
            self._write_heartbeat(conn, now)
            owned = set(self._rebalance(conn))
            rows = [(self.group, *tp, offset) for tp, offset in offsets.items() if tp in owned]
            conn.executemany(
                'INSERT INTO group_offsets ("group", topic, partition, next_offset) VALUES (?, ?, ?, ?) '
                'ON CONFLICT ("group", topic, partition) DO UPDATE SET next_offset = excluded.next_offset',
                rows,
            )
        self._beat_ms = now
        for _, topic, partition, offset in rows:
            self._committed[(topic, partition)] = offset

    def committed(self) -> dict[tuple[str, int], int]:
        """The group's committed next offset of each owned partition that has a commit."""
        self._check_open()
        with self._tx("read committed offsets") as conn:
            owned = self._rebalance(conn)
            result = {}
            for tp in owned:
                row = conn.execute(
                    'SELECT next_offset FROM group_offsets WHERE "group" = ? AND topic = ? AND partition = ?',
                    (self.group, *tp),
                ).fetchone()
                if row is not None:
                    result[tp] = int(row[0])
            return result

    def seek_to_beginning(self) -> None:
        """Forget uncommitted progress: the next poll reads from the committed offsets (or the start)."""
        self._check_open()
        self._positions.clear()
        self._committed.clear()

    def close(self) -> None:
        """Leave the group at once (the others take over its partitions at their next poll)."""
        if self._closed:
            return
        self._closed = True
        if self._db.closed:  # the bus closed first; the session timeout will evict this member
            return
        try:
            with self._tx("leave group", write=True) as conn:
                conn.execute(
                    'DELETE FROM group_members WHERE "group" = ? AND member_id = ?',
                    (self.group, self.member_id),
                )
        finally:
            self._db.forget(self._conn)
