"""Catalog fixtures: every catalog test runs on SQLite (a temporary file) and on PostgreSQL.

PostgreSQL is the server at 127.0.0.1:5432 (user ``postgres``, trust auth, database ``test``):
the session creates its own database there and drops it at the end; each test gets a fresh
schema in it, selected through the URI (``?options=-csearch_path=...``). Without the server
the PostgreSQL variants are skipped, which fails them in CI.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sparkhu.storage.catalog import Catalog
from sparkhu.storage.predictions import PredictionStore

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
PG_ADMIN_DB = "test"


def _pg_connect(dbname: str) -> psycopg.Connection:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, autocommit=True, connect_timeout=5
    )


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of this test session, dropped at its end."""
    try:
        admin = _pg_connect(PG_ADMIN_DB)
    except psycopg.OperationalError as exc:
        pytest.skip(
            f"PostgreSQL at {PG_HOST}:{PG_PORT} (user {PG_USER}, db {PG_ADMIN_DB}) unreachable: {exc}"
        )
    name = f"sparkhu_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_uri(pg_database: str) -> Iterator[str]:
    """A URI of a fresh, empty schema in the session's PostgreSQL database."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with _pg_connect(pg_database) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{pg_database}?options=-csearch_path%3D{schema}"
    with _pg_connect(pg_database) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URI of an empty catalog database: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return request.getfixturevalue("pg_uri")


@pytest.fixture
def catalog(catalog_uri: str) -> Iterator[Catalog]:
    """A migrated catalog on each backend."""
    with Catalog(catalog_uri) as cat:
        yield cat


@pytest.fixture
def store(catalog: Catalog) -> PredictionStore:
    """The prediction store in the catalog's database (alpha 0.6)."""
    return PredictionStore(catalog.engine)
