"""Online evaluation and drift: every forecast scored when its target arrives, and drift events.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

Only new tables: a catalog written by an older sparkhu keeps working. Both are written by the
online predictor in the transaction of its forecasts and checkpoint
(:mod:`sparkhu.online.scoring`), so a re-delivered batch is never scored twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.BigInteger


def upgrade() -> None:
    op.create_table(
        "online_scores",
        sa.Column("series_id", sa.String, primary_key=True),
        sa.Column("model", sa.String, primary_key=True),
        sa.Column("target_ts", TS, primary_key=True),
        sa.Column("origin_ts", TS, primary_key=True),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("actual", sa.Float, nullable=False),
        sa.Column("forecast", sa.Float, nullable=False),
        sa.Column("error", sa.Float, nullable=False),
        sa.Column("scale", sa.Float),
        sa.Column("covered", sa.Boolean),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_online_scores_series_target", "online_scores", ["series_id", "target_ts"])
    op.create_table(
        "drift_events",
        sa.Column("series_id", sa.String, primary_key=True),
        sa.Column("ts", TS, primary_key=True),
        sa.Column("kind", sa.String, primary_key=True),
        sa.Column("model", sa.String, primary_key=True),
        sa.Column("detector", sa.String, primary_key=True),
        sa.Column("statistic", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("detected_at", TS, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_drift_events_ts", "drift_events", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_drift_events_ts", table_name="drift_events")
    op.drop_table("drift_events")
    op.drop_index("ix_online_scores_series_target", table_name="online_scores")
    op.drop_table("online_scores")
