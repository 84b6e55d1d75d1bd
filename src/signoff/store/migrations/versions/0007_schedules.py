"""Schedules and triggers: the flows the scheduler knows, and every firing under a unique key.

Revision ID: 0007
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("flow", sa.String(length=200), nullable=False),
        sa.Column("cron", sa.String(length=200), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("catchup", sa.String(length=16), nullable=False),
        sa.Column("overlap", sa.String(length=16), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=True),
        sa.Column("flow_path", sa.Text(), nullable=False),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("triggers", sa.JSON(), nullable=False),
        sa.Column("trigger_state", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("flow", name=op.f("pk_schedules")),
    )
    op.create_table(
        "firings",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("flow", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("fired_at", sa.Float(), nullable=False),
        sa.Column("scheduled_at", sa.Float(), nullable=True),
        sa.Column("trigger_id", sa.String(length=64), nullable=True),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("claimed_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_firings")),
    )
    with op.batch_alter_table("firings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_firings_flow"), ["flow"], unique=False)
        batch_op.create_index(batch_op.f("ix_firings_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_firings_trigger_id"), ["trigger_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_firings_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_table("firings")
    op.drop_table("schedules")
