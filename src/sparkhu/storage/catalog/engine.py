"""How the catalog talks to its database: URIs, engines, transactions and error translation.

Two backends, chosen by URI:

* ``sqlite:///path/catalog.db`` — one file in WAL mode with a 30 s busy timeout. pysqlite's
  own transaction handling is switched off and every transaction is begun explicitly:
  ``BEGIN IMMEDIATE`` for writes (so a writer takes the write lock up front and waits for
  it, instead of failing with "database is locked" when it upgrades a read lock), plain
  ``BEGIN`` for reads.
* ``postgresql://user@host/db`` (also ``postgres://`` and ``postgresql+psycopg://``) —
  PostgreSQL through psycopg 3.

Timestamps are stored as integer microseconds since the Unix epoch, UTC, in every table;
:func:`sparkhu.timeaxis.to_us` and :func:`sparkhu.timeaxis.from_us` convert at the edges.

>>> mask("postgresql://bob:secret@db:5432/cat")
'postgresql://bob:***@db:5432/cat'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from sparkhu.errors import BackendUnavailable, CatalogError, ConfigError

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for another process's write lock before giving up."""
CONNECT_TIMEOUT_S = 10
"""PostgreSQL connect timeout, unless the URI sets ``connect_timeout``."""
_WRITE_OPTION = "sparkhu_write"


def mask(uri: str | URL) -> str:
    """``uri`` with its password replaced by ``***`` (for messages)."""
    try:
        url = uri if isinstance(uri, URL) else make_url(uri)
    except ArgumentError:
        return str(uri)
    return url.render_as_string(hide_password=True)


def parse_uri(uri: str) -> URL:
    """The SQLAlchemy URL for a catalog URI; raises :class:`ConfigError` for anything else.

    ``postgresql://`` and ``postgres://`` select psycopg 3 (``postgresql+psycopg://``).
    """
    try:
        url = make_url(uri)
    except ArgumentError as exc:
        raise ConfigError(
            f"catalog URI {uri!r} is not a database URL; expected sqlite:///path/catalog.db "
            "or postgresql://user@host:5432/db"
        ) from exc
    if url.drivername in {"postgresql", "postgres", "postgresql+psycopg"}:
        return url.set(drivername="postgresql+psycopg")
    if url.drivername in {"sqlite", "sqlite+pysqlite"}:
        return url.set(drivername="sqlite+pysqlite")
    raise ConfigError(
        f"catalog URI {mask(url)!r}: unsupported scheme {url.drivername!r}; "
        "use sqlite:///path/catalog.db or postgresql://user@host:5432/db"
    )


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL, ``None`` for an in-memory database."""
    if url.database in (None, "", ":memory:") or url.database.startswith("file:"):
        return None
    return Path(url.database)


def connect(uri: str) -> Engine:
    """An engine for ``uri`` with the catalog's connection set-up; checks that it is reachable.

    Raises :class:`ConfigError` for an unsupported URI and :class:`BackendUnavailable`
    (naming the URI, password masked) when the database cannot be opened.
    """
    url = parse_uri(uri)
    if url.drivername.startswith("sqlite"):
        engine = _sqlite_engine(url, uri)
    else:
        args: dict[str, Any] = {}
        if "connect_timeout" not in url.query:
            args["connect_timeout"] = CONNECT_TIMEOUT_S
        engine = sa.create_engine(url, connect_args=args, pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as exc:
        engine.dispose()
        raise BackendUnavailable(mask(uri), _first_line(exc)) from exc
    return engine


def _sqlite_engine(url: URL, uri: str) -> Engine:
    path = sqlite_path(url)
    if path is None:
        engine = sa.create_engine(
            url, poolclass=StaticPool, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S}
        )
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailable(mask(uri), f"cannot create {path.parent}: {exc}") from exc
        engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if path is not None:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def is_sqlite(engine: Engine) -> bool:
    """True for a SQLite engine, False for PostgreSQL."""
    return engine.dialect.name == "sqlite"


@contextmanager
def write_tx(engine: Engine, what: str) -> Iterator[Connection]:
    """A connection in a write transaction, committed on success.

    SQLite: ``BEGIN IMMEDIATE``. Errors are translated: a lost or unreachable database
    becomes :class:`BackendUnavailable`, any other database error :class:`CatalogError`
    naming ``what`` was being done.
    """
    with _translated(engine, what), engine.connect() as conn:
        conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            yield conn


@contextmanager
def read_tx(engine: Engine, what: str) -> Iterator[Connection]:
    """A connection in a read transaction (a consistent snapshot), with errors translated."""
    with _translated(engine, what), engine.connect() as conn, conn.begin():
        yield conn


@contextmanager
def _translated(engine: Engine, what: str) -> Iterator[None]:
    try:
        yield
    except IntegrityError as exc:
        raise CatalogError(f"{what}: conflicts with stored data: {_first_line(exc)}") from exc
    except OperationalError as exc:
        if _is_unreachable(engine, exc):
            raise BackendUnavailable(mask(engine.url), _first_line(exc)) from exc
        raise CatalogError(f"{what}: {_first_line(exc)} (catalog {mask(engine.url)})") from exc
    except SQLAlchemyError as exc:
        raise CatalogError(f"{what}: {_first_line(exc)} (catalog {mask(engine.url)})") from exc


def _is_unreachable(engine: Engine, exc: OperationalError) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    text = str(exc.orig).lower()
    if is_sqlite(engine):
        return "unable to open" in text or "disk i/o" in text
    return any(s in text for s in ("connection", "could not connect", "server closed", "timeout expired"))


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def dialect_insert(engine: Engine | Connection, table: sa.Table) -> sqlite.Insert | postgresql.Insert:
    """``INSERT`` of the engine's dialect, which has ``on_conflict_do_nothing/do_update``."""
    # a dialect's module is imported only once its database is used (PostgreSQL's takes ~75 ms)
    if engine.dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    from sqlalchemy.dialects import postgresql

    return postgresql.insert(table)
