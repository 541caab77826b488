"""The feature metadata store in full: descriptions (with a word index) and tag index of series,
declared lineage between series, time range and writing run of partitions, the run and feature view
of model versions, and feature views.

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-03

Only additions (nullable columns, new tables, new indexes): a catalog written by an older sparkhu
keeps working, and tags already stored in ``series.tags`` are copied into ``series_tags``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.BigInteger
EXTRA_KEY = "_extra"  # as in records.py at this revision


def upgrade() -> None:
    op.add_column("series", sa.Column("description", sa.Text))
    op.create_table(
        "series_tags",
        sa.Column("series_id", sa.String, primary_key=True),
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("value", sa.String, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_series_tags_key_value", "series_tags", ["key", "value", "series_id"])
    op.create_table(
        "series_words",
        sa.Column("word", sa.String, primary_key=True),
        sa.Column("series_id", sa.String, primary_key=True),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_series_words_series", "series_words", ["series_id"])
    op.create_table(
        "series_links",
        sa.Column("series_id", sa.String, primary_key=True),
        sa.Column("upstream_id", sa.String, primary_key=True),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_series_links_upstream", "series_links", ["upstream_id"])
    op.add_column("partitions", sa.Column("first_ts", TS))
    op.add_column("partitions", sa.Column("last_ts", TS))
    op.add_column("partitions", sa.Column("run_id", sa.String))
    op.create_index("ix_partitions_run_id", "partitions", ["run_id"])
    op.create_index("ix_runs_series_id", "runs", ["series_id"])
    op.add_column("models", sa.Column("run_id", sa.String))
    op.add_column("models", sa.Column("feature_view", sa.String))
    op.add_column("models", sa.Column("feature_view_version", sa.Integer))
    op.create_index("ix_models_run_id", "models", ["run_id"])
    op.create_table(
        "feature_views",
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("body", JSON, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_at", TS, nullable=False),
    )
    _copy_tags()


def _copy_tags() -> None:
    """Index the tags series already have (the pipeline's ``_extra`` is no tag) and the words of their ids."""
    conn = op.get_bind()
    series = sa.table("series", sa.column("series_id", sa.String), sa.column("tags", JSON))
    columns = (sa.column("series_id", sa.String), sa.column("key", sa.String), sa.column("value", sa.String))
    tags = sa.table("series_tags", *columns)
    rows = [
        {"series_id": sid, "key": key, "value": str(value)}
        for sid, stored in conn.execute(sa.select(series.c.series_id, series.c.tags))
        for key, value in (stored or {}).items()
        if key != EXTRA_KEY
    ]
    if rows:
        conn.execute(sa.insert(tags), rows)
    words = sa.table("series_words", sa.column("word", sa.String), sa.column("series_id", sa.String))
    indexed = [
        {"word": word, "series_id": sid}
        for (sid,) in conn.execute(sa.select(series.c.series_id))
        for word in dict.fromkeys(w[:64] for w in re.findall(r"[0-9a-z]+", sid.lower()))
    ]
    if indexed:
        conn.execute(sa.insert(words), indexed)


def downgrade() -> None:
    op.drop_table("feature_views")
    op.drop_index("ix_models_run_id", "models")
    for column in ("feature_view_version", "feature_view", "run_id"):
        op.drop_column("models", column)
    op.drop_index("ix_runs_series_id", "runs")
    op.drop_index("ix_partitions_run_id", "partitions")
    for column in ("run_id", "last_ts", "first_ts"):
        op.drop_column("partitions", column)
    op.drop_table("series_links")
    op.drop_table("series_words")
    op.drop_table("series_tags")
    op.drop_column("series", "description")
