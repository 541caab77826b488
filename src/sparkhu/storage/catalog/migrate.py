"""Alembic migrations of the catalog, run in code (no ``alembic.ini`` needed at run time).

:func:`upgrade` brings a database to the newest revision in one transaction, under a lock
so that several processes opening a fresh catalog at once migrate it exactly once:

* SQLite: an exclusive ``flock`` on ``<database>.lock`` around connecting (which switches
  the file to WAL) and migrating, and ``BEGIN IMMEDIATE`` for the migration itself;
* PostgreSQL: ``pg_advisory_xact_lock`` taken first in the migration's transaction
  (DDL is transactional there), released by its commit.

A process that waited for the lock finds the schema at head and does nothing.

>>> head_revision()
'0005'
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection, Engine

from sparkhu.errors import BackendUnavailable, CatalogError
from sparkhu.storage.catalog.engine import is_sqlite, mask, read_tx, sqlite_path, write_tx

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: BEGIN IMMEDIATE alone serialises migrations
    fcntl = None  # type: ignore[assignment]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "sparkhu_catalog_version"
"""Alembic's version table (not ``alembic_version``, which MLflow uses in a shared database)."""
_ALEMBIC_LOCK = threading.Lock()
"""Alembic keeps its running migration in module-level proxies (``alembic.context``,
``alembic.op``), so two threads of one process must not migrate at the same time. Always
taken before the file or database lock, so lock order is the same everywhere."""
_PG_LOCK_KEY = int.from_bytes(
    hashlib.blake2b(b"sparkhu.catalog.migrate", digest_size=8).digest(), "big", signed=True
)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic :class:`Config` for the catalog's migrations, optionally bound to ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package ships its migrations
        raise CatalogError(f"no catalog migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    with read_tx(engine, "reading the catalog's schema revision") as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade(engine: Engine, revision: str = "head", *, locked: bool = False) -> None:
    """Migrate the database of ``engine`` to ``revision`` (default: the newest), once, under a lock.

    ``locked``: the caller already holds :func:`migration_lock` for this database.
    """
    with (
        nullcontext() if locked else migration_lock(engine.url),
        write_tx(engine, f"migrating the catalog to {revision}") as conn,
    ):
        if not is_sqlite(engine):
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        command.upgrade(alembic_config(conn), revision)


def check(engine: Engine) -> None:
    """Raise :class:`CatalogError` unless the database is at the newest revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise CatalogError(
            f"catalog {mask(engine.url)} is at schema revision {current or '(empty)'}, expected {head}; "
            "open it with migrate=True to upgrade it"
        )


@contextmanager
def migration_lock(url: URL) -> Iterator[None]:
    """The lock under which a catalog is first opened (switched to WAL) and migrated.

    Within the process, one thread at a time (Alembic is not thread-safe); across processes,
    for a SQLite file, an exclusive ``flock`` on ``<database>.lock``. PostgreSQL adds its
    advisory lock inside the migration's transaction (:func:`upgrade`).
    """
    path = sqlite_path(url) if url.get_backend_name() == "sqlite" else None
    with _ALEMBIC_LOCK:
        if path is None or fcntl is None:
            yield
        else:
            with _file_lock(url, path):
                yield


@contextmanager
def _file_lock(url: URL, path: Path) -> Iterator[None]:
    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = lock_path.open("a")
    except OSError as exc:
        raise BackendUnavailable(mask(url), f"cannot open lock file {lock_path}: {exc}") from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
