"""Serving: deployment kinds and traffic, the prediction log and feedback labels.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=32), nullable=False, server_default="rollover")
        )
        batch_op.add_column(
            sa.Column("traffic", sa.Integer(), nullable=False, server_default="100")
        )
        batch_op.add_column(
            sa.Column("previous_model_version_id", sa.String(length=32), nullable=True)
        )
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("max_error_rate", sa.Float(), nullable=True))
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("endpoint", sa.String(length=200), nullable=False),
        sa.Column("model_version", sa.String(length=200), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
    )
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_predictions_endpoint"), ["endpoint"], unique=False)
        batch_op.create_index(batch_op.f("ix_predictions_at"), ["at"], unique=False)
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("prediction_id", sa.String(length=32), nullable=False),
        sa.Column("label", sa.JSON(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name=op.f("fk_feedback_prediction_id_predictions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_feedback_prediction_id"), ["prediction_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_prediction_id"))
    op.drop_table("feedback")
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_predictions_at"))
        batch_op.drop_index(batch_op.f("ix_predictions_endpoint"))
    op.drop_table("predictions")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("max_error_rate")
        batch_op.drop_column("reason")
        batch_op.drop_column("previous_model_version_id")
        batch_op.drop_column("traffic")
        batch_op.drop_column("kind")
