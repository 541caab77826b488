"""The initial catalog: sources, series, datasets, partitions, runs, models, forecasts,
series_alpha, policies, watermarks and the audit log.

Revision ID: 0001
Revises:
Create Date: 2024-01-01

Timestamps are BIGINT microseconds since the epoch, UTC. The tables are spelled out here
(not imported from ``schema.py``) so that this revision stays what it was when later ones
change the schema.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.BigInteger


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "series",
        sa.Column("series_id", sa.String, primary_key=True),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("measurement", sa.String, nullable=False),
        sa.Column("field", sa.String, nullable=False),
        sa.Column("unit", sa.String),
        sa.Column("period_s", sa.Float),
        sa.Column("regular", sa.Boolean),
        sa.Column("first_ts", TS),
        sa.Column("last_ts", TS),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("value_min", sa.Float),
        sa.Column("value_max", sa.Float),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_series_source", "series", ["source"])
    op.create_table(
        "datasets",
        sa.Column("zone", sa.String, primary_key=True),
        sa.Column("dataset", sa.String, primary_key=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "partitions",
        sa.Column("zone", sa.String, primary_key=True),
        sa.Column("dataset", sa.String, primary_key=True),
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("files", sa.Integer, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String, primary_key=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("series_id", sa.String),
        sa.Column("interval_start", TS),
        sa.Column("interval_end", TS),
        sa.Column("rows_in", sa.BigInteger),
        sa.Column("rows_out", sa.BigInteger),
        sa.Column("params", JSON, nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_index("ix_runs_kind_name_started_at", "runs", ["kind", "name", "started_at"])
    op.create_table(
        "models",
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("version", sa.String, primary_key=True),
        sa.Column("series_id", sa.String),
        sa.Column("uri", sa.String, nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("aliases", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_models_series_id", "models", ["series_id"])
    op.create_table(
        "forecasts_raw",
        sa.Column("series_id", sa.String, primary_key=True),
        sa.Column("target_ts", TS, primary_key=True),
        sa.Column("origin_ts", TS, primary_key=True),
        sa.Column("model", sa.String, primary_key=True),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("lower", sa.Float),
        sa.Column("upper", sa.Float),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_forecasts_raw_series_origin", "forecasts_raw", ["series_id", "origin_ts"])
    op.create_table(
        "forecasts_blended",
        sa.Column("series_id", sa.String, primary_key=True),
        sa.Column("target_ts", TS, primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("lower", sa.Float),
        sa.Column("upper", sa.Float),
        sa.Column("updates", sa.Integer, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "series_alpha",
        sa.Column("series_id", sa.String, primary_key=True),
        sa.Column("alpha", sa.Float, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "policies",
        sa.Column("kind", sa.String, primary_key=True),
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("body", JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "watermarks",
        sa.Column("owner", sa.String, primary_key=True),
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("position", JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("target", sa.String, nullable=False),
        sa.Column("detail", JSON, nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    for name in (
        "audit_log",
        "watermarks",
        "policies",
        "series_alpha",
        "forecasts_blended",
        "forecasts_raw",
        "models",
        "runs",
        "partitions",
        "datasets",
        "series",
        "sources",
    ):
        op.drop_table(name)
