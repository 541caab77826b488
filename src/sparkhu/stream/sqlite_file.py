"""The SQLite file behind the embedded bus: its schema, and connections per thread and process.

:mod:`sparkhu.stream.sqlite` (the log) and :mod:`sparkhu.stream.sqlite_group` (consumer
groups) both work through one :class:`SqliteFile`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sparkhu.errors import BusError

SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS partition_ends (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS messages (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
    key BLOB, ts_ms INTEGER NOT NULL, headers TEXT, value BLOB NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS messages_position ON messages (topic, partition, "offset");
CREATE INDEX IF NOT EXISTS messages_time ON messages (topic, ts_ms);
CREATE TABLE IF NOT EXISTS group_offsets (
    "group" TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL, PRIMARY KEY ("group", topic, partition));
CREATE TABLE IF NOT EXISTS group_members (
    "group" TEXT NOT NULL, member_id TEXT NOT NULL, topics TEXT NOT NULL,
    heartbeat_ms INTEGER NOT NULL, session_ms INTEGER NOT NULL, PRIMARY KEY ("group", member_id));
"""


class SqliteFile:
    """Connections to one SQLite file: one per thread (re-opened after a fork), plus dedicated ones."""

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[sqlite3.Connection] = []
        self.closed = False

    def connect(self) -> sqlite3.Connection:
        """A new connection (autocommit mode; transactions are explicit)."""
        if self.closed:
            raise BusError(f"SQLite bus {self.path} is closed; open a new bus")
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA journal_size_limit = 67108864")
        except sqlite3.Error as exc:
            raise self.error("open", exc) from exc
        with self._lock:
            self._opened.append(conn)
        return conn

    def conn(self) -> sqlite3.Connection:
        """This thread's shared connection."""
        pid, conn = getattr(self._local, "entry", (None, None))
        if conn is None or pid != os.getpid() or self.closed:
            conn = self.connect()
            self._local.entry = (os.getpid(), conn)
        return conn

    @contextmanager
    def transaction(
        self, conn: sqlite3.Connection, action: str, *, write: bool
    ) -> Iterator[sqlite3.Connection]:
        """One transaction (``BEGIN IMMEDIATE`` when ``write``); sqlite3 errors become :class:`BusError`."""
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            raise self.error(action, exc) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            if isinstance(exc, sqlite3.Error):
                raise self.error(action, exc) from exc
            raise

    def error(self, action: str, exc: sqlite3.Error) -> BusError:
        """The :class:`BusError` for a failed ``action``, naming the file."""
        hint = ""
        if "locked" in str(exc) or "busy" in str(exc):
            hint = f" (another process held the write lock longer than busy_timeout={self.busy_timeout}s)"
        return BusError(f"SQLite bus {self.path}: {action} failed: {exc}{hint}")

    def close(self) -> None:
        """Close every connection opened so far (dedicated ones of consumers included)."""
        self.closed = True
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def forget(self, conn: sqlite3.Connection) -> None:
        """Close one dedicated connection."""
        with self._lock:
            if conn in self._opened:
                self._opened.remove(conn)
        try:
            conn.close()
        except sqlite3.Error:
            pass
