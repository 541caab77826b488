"""The embedded bus: a log of topics in one SQLite file, safe across threads and processes.

Tables: ``topics(name, partitions)``, ``partition_ends(topic, partition, next_offset)``,
``messages(topic, partition, offset, key, ts_ms, headers, value)`` (the value last, so that
scans never walk a large blob's overflow pages), ``group_offsets(group, topic, partition,
next_offset)`` and ``group_members(group, member_id, topics, heartbeat_ms, session_ms)``.
The file runs in WAL mode with ``synchronous=FULL``: every write is one ``BEGIN IMMEDIATE``
transaction that is fsync'd before it returns; offsets are dense per (topic, partition) and
assigned inside the write, so concurrent producers in other processes never collide.

Consumer groups (membership, heartbeats, assignment, commits) live in
:mod:`sparkhu.stream.sqlite_group`.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp, SqliteBus(f"sqlite:///{tmp}/bus.db") as bus:
...     bus.create_topic("points", 2)
...     bus.produce("points", [(b"a", b"1"), (b"a", b"2")])
...     with bus.consumer("sink", ["points"]) as consumer:
...         got = [(m.partition, m.offset, m.value) for m in consumer.poll(timeout=0)]
...         consumer.commit()
...         committed = consumer.committed()
...     got, committed, bus.end_offsets("points")
([(1, 0, b'1'), (1, 1, b'2')], {('points', 1): 2}, {0: 0, 1: 2})
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sparkhu.errors import BusError, ConfigError
from sparkhu.stream.base import Bus, check_partitions, check_records, check_topic, partition_for
from sparkhu.stream.sqlite_file import SCHEMA, SqliteFile
from sparkhu.stream.sqlite_group import SqliteConsumer, now_ms

__all__ = ["SqliteBus", "SqliteConsumer", "SqliteFile"]


class SqliteBus(Bus):
    """A :class:`~sparkhu.stream.base.Bus` in one SQLite file (``sqlite:///relative`` or ``sqlite:////absolute``).

    ``session_timeout`` (seconds) is the default for consumers; ``busy_timeout`` bounds the
    wait for another writer's lock. Picklable: a copy in another process reopens the file.
    """

    def __init__(
        self,
        uri: str,
        *,
        default_partitions: int = 4,
        session_timeout: float = 10.0,
        busy_timeout: float = 30.0,
    ) -> None:
        if not isinstance(uri, str) or not uri.startswith("sqlite:///") or uri == "sqlite:///":
            raise ConfigError(
                f"bus URI {uri!r}: expected sqlite:///relative/path or sqlite:////absolute/path"
            )
        path = uri[len("sqlite:///") :]
        if path == ":memory:" or path.startswith("file:"):
            raise ConfigError(
                f"bus URI {uri!r}: the SQLite bus needs a file shared by processes, not {path!r}"
            )
        if not isinstance(default_partitions, int) or default_partitions < 1:
            raise ConfigError(
                f"bus {uri}: default_partitions must be an integer >= 1, got {default_partitions!r}"
            )
        if session_timeout <= 0 or busy_timeout <= 0:
            raise ConfigError(f"bus {uri}: session_timeout and busy_timeout must be positive seconds")
        self.uri = uri
        self.default_partitions = default_partitions
        self.session_timeout = float(session_timeout)
        self.busy_timeout = float(busy_timeout)
        self._db = SqliteFile(Path(path), self.busy_timeout)
        try:
            self._db.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BusError(f"SQLite bus {path}: cannot create its folder: {exc}") from exc
        conn = self._db.conn()
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as exc:
            raise self._db.error("switch to WAL", exc) from exc
        with self._db.transaction(conn, "create tables", write=True):
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        rebuild = functools.partial(
            SqliteBus,
            self.uri,
            default_partitions=self.default_partitions,
            session_timeout=self.session_timeout,
            busy_timeout=self.busy_timeout,
        )
        return rebuild, ()

    def __repr__(self) -> str:
        return f"SqliteBus({self.uri!r})"

    @contextmanager
    def _tx(self, action: str, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        with self._db.transaction(self._db.conn(), action, write=write) as conn:
            yield conn

    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        """Create ``topic`` if missing; an existing topic must not be asked for another partition count."""
        count = check_partitions(
            check_topic(topic), self.default_partitions if partitions is None else partitions
        )
        with self._tx(f"create topic {topic!r}", write=True) as conn:
            row = conn.execute("SELECT partitions FROM topics WHERE name = ?", (topic,)).fetchone()
            if row is not None:
                if partitions is not None and row[0] != partitions:
                    raise BusError(
                        f"topic {topic!r} on {self.uri} already has {row[0]} partitions, not {partitions}"
                    )
                return
            conn.execute("INSERT INTO topics (name, partitions) VALUES (?, ?)", (topic, count))
            conn.executemany(
                "INSERT INTO partition_ends (topic, partition, next_offset) VALUES (?, ?, 0)",
                [(topic, p) for p in range(count)],
            )

    def _partitions(self, conn: sqlite3.Connection, topic: str) -> int:
        row = conn.execute("SELECT partitions FROM topics WHERE name = ?", (topic,)).fetchone()
        if row is None:
            raise BusError(f"unknown topic {topic!r} on {self.uri}; create it with create_topic({topic!r})")
        return int(row[0])

    def partitions(self, topic: str) -> int:
        """Number of partitions of ``topic``."""
        check_topic(topic)
        with self._tx(f"read topic {topic!r}") as conn:
            return self._partitions(conn, topic)

    def topics(self) -> dict[str, int]:
        """Every topic with its partition count."""
        with self._tx("list topics") as conn:
            return dict(conn.execute("SELECT name, partitions FROM topics ORDER BY name").fetchall())

    def produce(
        self,
        topic: str,
        records: Sequence[tuple[bytes | None, bytes]],
        headers: dict[str, bytes] | None = None,
    ) -> None:
        """Append ``records`` in one durable transaction; offsets are assigned inside it."""
        check_records(check_topic(topic), records)
        if not records:
            return
        encoded_headers = None
        if headers:
            if not all(isinstance(k, str) and isinstance(v, bytes) for k, v in headers.items()):
                raise BusError(f"produce to {topic!r}: headers must map str to bytes")
            encoded_headers = json.dumps({k: v.decode("latin-1") for k, v in headers.items()})
        now = now_ms()
        with self._tx(f"produce to {topic!r}", write=True) as conn:
            count = self._partitions(conn, topic)
            ends = dict(
                conn.execute("SELECT partition, next_offset FROM partition_ends WHERE topic = ?", (topic,))
            )
            rows = []
            for key, value in records:
                partition = partition_for(key, count)
                rows.append((topic, partition, ends[partition], key, now, encoded_headers, value))
                ends[partition] += 1
            conn.executemany(
                'INSERT INTO messages (topic, partition, "offset", key, ts_ms, headers, value) '
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.executemany(
                "UPDATE partition_ends SET next_offset = ? WHERE topic = ? AND partition = ?",
                [(end, topic, partition) for partition, end in ends.items()],
            )

    def consumer(
        self, group: str, topics: Sequence[str], *, session_timeout: float | None = None
    ) -> SqliteConsumer:
        """Join ``group`` reading ``topics`` (which must exist); see :class:`SqliteConsumer`."""
        if not isinstance(group, str) or not group.strip():
            raise BusError(f"consumer group name {group!r} must be a non-empty string")
        if isinstance(topics, str) or not topics:
            raise BusError(
                f"consumer of group {group!r}: topics must be a non-empty list of names, got {topics!r}"
            )
        for topic in topics:
            self.partitions(topic)
        timeout = self.session_timeout if session_timeout is None else session_timeout
        if timeout <= 0:
            raise BusError(f"consumer of group {group!r}: session_timeout must be positive, got {timeout!r}")
        return SqliteConsumer(self._db, group, sorted(set(topics)), timeout)

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Next offset to be written, per partition."""
        check_topic(topic)
        with self._tx(f"read end offsets of {topic!r}") as conn:
            self._partitions(conn, topic)
            rows = conn.execute(
                "SELECT partition, next_offset FROM partition_ends WHERE topic = ? ORDER BY partition",
                (topic,),
            )
            return dict(rows.fetchall())

    def beginning_offsets(self, topic: str) -> dict[int, int]:
        """First offset still stored, per partition (the end offset when the partition is empty)."""
        ends = self.end_offsets(topic)
        with self._tx(f"read beginning offsets of {topic!r}") as conn:
            rows = conn.execute(
                'SELECT partition, MIN("offset") FROM messages WHERE topic = ? GROUP BY partition', (topic,)
            )
            return {**ends, **dict(rows.fetchall())}

    def group_offsets(self, group: str, topic: str) -> dict[int, int]:
        """Committed next offset of ``group`` per partition of ``topic`` (for lag and retention)."""
        check_topic(topic)
        with self._tx(f"read offsets of group {group!r}") as conn:
            self._partitions(conn, topic)
            rows = conn.execute(
                'SELECT partition, next_offset FROM group_offsets WHERE "group" = ? AND topic = ? '
                "ORDER BY partition",
                (group, topic),
            )
            return dict(rows.fetchall())

    def truncate(self, topic: str, before: Mapping[int, int]) -> int:
        """Delete messages with an offset below ``before[partition]``; returns how many were deleted."""
        check_topic(topic)
        with self._tx(f"truncate {topic!r}", write=True) as conn:
            count = self._partitions(conn, topic)
            bad = [p for p in before if not isinstance(p, int) or not 0 <= p < count]
            if bad:
                raise BusError(f"truncate {topic!r}: no partition(s) {bad} (the topic has {count})")
            deleted = 0
            for partition, offset in before.items():
                cursor = conn.execute(
                    'DELETE FROM messages WHERE topic = ? AND partition = ? AND "offset" < ?',
                    (topic, partition, offset),
                )
                deleted += cursor.rowcount
            return deleted

    def delete_before(self, topic: str, ts_ms: int, *, consumed: bool = False, dry_run: bool = False) -> int:
        """Delete messages of ``topic`` appended before ``ts_ms`` (epoch ms); returns how many.

        ``consumed``: only messages every consumer group of the topic has committed (a group that has
        not yet read a message keeps it). ``dry_run``: count, delete nothing.
        """
        check_topic(topic)
        where = "topic = ? AND ts_ms < ?"
        if consumed:
            # a partition no group committed keeps everything (COALESCE to offset 0)
            where += (
                ' AND "offset" < COALESCE((SELECT MIN(g.next_offset) FROM group_offsets g '
                "WHERE g.topic = messages.topic AND g.partition = messages.partition), 0)"
            )
        verb = "count" if dry_run else "delete"
        with self._tx(f"{verb} old messages of {topic!r}", write=not dry_run) as conn:
            self._partitions(conn, topic)
            if dry_run:
                return int(
                    conn.execute(
                        f"SELECT COUNT(*) FROM messages WHERE {where}", (topic, int(ts_ms))
                    ).fetchone()[0]
                )
            cursor = conn.execute(f"DELETE FROM messages WHERE {where}", (topic, int(ts_ms)))
            return cursor.rowcount

    def close(self) -> None:
        """Close every connection this bus opened (consumers included)."""
        self._db.close()
