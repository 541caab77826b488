"""The controller's tables: the append-only champion history and the controller's cycles.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-03

Only new tables: a catalog written by an older sparkhu keeps working. Training policies set at run
time live in the existing ``policies`` table (kind ``training``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.BigInteger
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "champion_history",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("series_id", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("previous_version", sa.Integer),
        sa.Column("event", sa.String, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("numbers", JSON, nullable=False),
        sa.Column("action_id", sa.BigInteger),
    )
    op.create_index("ix_champion_history_name", "champion_history", ["name", "id"])
    op.create_index("ux_champion_history_action", "champion_history", ["action_id", "event"], unique=True)
    op.create_table(
        "control_actions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("series_id", sa.String, nullable=False),
        sa.Column("policy", sa.String),
        sa.Column("trigger", sa.String, nullable=False),
        sa.Column("state", sa.String, nullable=False),
        sa.Column("champion_version", sa.Integer),
        sa.Column("challenger_version", sa.Integer),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_control_actions_series", "control_actions", ["series_id", "id"])
    op.create_index("ix_control_actions_state", "control_actions", ["state"])


def downgrade() -> None:
    op.drop_table("control_actions")
    op.drop_table("champion_history")
