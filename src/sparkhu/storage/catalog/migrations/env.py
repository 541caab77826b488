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


def run_offline() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    context.configure(
        url=str(parse_uri(url)),
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = sa.create_engine(parse_uri(url))
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if config is None:
    pass
elif context.is_offline_mode():
    run_offline()
else:
    run_online()
