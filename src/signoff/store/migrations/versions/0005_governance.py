"""People and governance: users, groups, API and link tokens, the audit log, notifications.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_users")),
    )
    op.create_table(
        "group_members",
        sa.Column("group_name", sa.String(length=200), nullable=False),
        sa.Column("user_name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("group_name", "user_name", name=op.f("pk_group_members")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=200), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("prefix", name=op.f("pk_api_tokens")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_name"), ["user_name"], unique=False)
    op.create_table(
        "link_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("gate_id", sa.String(length=32), nullable=False),
        sa.Column("user_name", sa.String(length=200), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_link_tokens")),
    )
    with op.batch_alter_table("link_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_link_tokens_gate_id"), ["gate_id"], unique=False)
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("gate_id", sa.String(length=32), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_run_id"), ["run_id"], unique=False)
    op.create_table(
        "notifications",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("gate_id", sa.String(length=32), nullable=False),
        sa.Column("user_name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notifications_gate_id"), ["gate_id"], unique=False)
    op.create_table(
        "gate_policy",
        sa.Column("gate_id", sa.String(length=32), nullable=False),
        sa.Column("on_timeout", sa.String(length=16), nullable=False),
        sa.Column("remind_every", sa.Integer(), nullable=True),
        sa.Column("supersede", sa.Boolean(), nullable=False),
        sa.Column("auto_approve_if", sa.Text(), nullable=True),
        sa.Column("reminded_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("gate_id", name=op.f("pk_gate_policy")),
    )


def downgrade() -> None:
    for table in (
        "gate_policy",
        "notifications",
        "audit_log",
        "link_tokens",
        "api_tokens",
        "group_members",
        "users",
    ):
        op.drop_table(table)
