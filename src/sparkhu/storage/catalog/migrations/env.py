"""Alembic environment of the catalog.

Run programmatically by :func:`sparkhu.storage.catalog.migrate.upgrade`, which passes an open
connection already inside a transaction (``config.attributes["connection"]``): every
migration then runs in that one transaction, under the caller's lock. For developers, the
alembic command line also works with the ``alembic.ini`` beside ``migrations/``
(``alembic -c src/sparkhu/storage/catalog/alembic.ini -x url=sqlite:///dev.db revision ...``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from alembic.config import Config

from sparkhu.errors import ConfigError
from sparkhu.storage.catalog.engine import parse_uri
from sparkhu.storage.catalog.migrate import VERSION_TABLE
from sparkhu.storage.catalog.schema import metadata

config = getattr(context, "config", None)  # None when imported outside Alembic (doctest collection)


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _url(config: Config) -> str:
    """The database of a command-line run: ``-x url=...``, else ``sqlalchemy.url`` of alembic.ini."""
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise ConfigError(
            "catalog migrations: no database URL; pass -x url=sqlite:///... "
            "or set sqlalchemy.url in alembic.ini"
        )
    return url


def run_offline(config: Config) -> None:
    context.configure(
        url=str(parse_uri(_url(config))),
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online(config: Config) -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(parse_uri(_url(config)))
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if config is None:
    pass
elif context.is_offline_mode():
    run_offline(config)
else:
    run_online(config)
