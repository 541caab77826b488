"""The catalog — the feature metadata store — on SQLite (WAL) or PostgreSQL.

SQLAlchemy Core tables (:mod:`sparkhu.storage.catalog.schema`) migrated by Alembic
(:mod:`sparkhu.storage.catalog.migrations`): sources, series, datasets and partitions,
runs, models, forecasts (the prediction store's tables), policies, watermarks and an
append-only audit log. :class:`Catalog` is the one door to them.
"""

from sparkhu.storage.catalog.catalog import Catalog, RunRecord, SeriesInfo

__all__ = ["Catalog", "RunRecord", "SeriesInfo"]
