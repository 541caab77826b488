"""The metadata store's gaps: the series a global model version was trained on, and an index on the
audit log's targets (the retention actions of a lineage are a range of targets, not a scan).

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-03

Only additions (a table and an index): a catalog written by an older sparkhu keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_series",
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("version", sa.String, primary_key=True),
        sa.Column("series_id", sa.String, primary_key=True),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_model_series_series", "model_series", ["series_id"])
    op.create_index("ix_audit_log_target", "audit_log", ["target"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_target", "audit_log")
    op.drop_table("model_series")
