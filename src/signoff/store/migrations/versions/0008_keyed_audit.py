"""The keyed audit chain, and what crash recovery needs to finish a gate's opening once.

Entries already in the log were chained with plain sha256 and keep ``sha256``; new ones are
HMAC-SHA256 under the audit key (``hmac-sha256``). A gate's policy row records when its
follow-up (supersede, the auto-approve rule, notices) completed (``announced_at``), and a
notice when it was handed to its channel (``sent_at``), so a restarted process finishes what
a dead one began. A deployment says when an admin served a version no gate approved
(``override``, the stated reason). This revision also joins the two lines of migrations
(0006 and 0007).

Revision ID: 0008
Revises: 0006, 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = ("0006", "0007")
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(
            sa.Column("scheme", sa.String(length=16), nullable=False, server_default="sha256")
        )
    with op.batch_alter_table("gate_policy") as batch:
        batch.add_column(sa.Column("announced_at", sa.Float(), nullable=True))
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("sent_at", sa.Float(), nullable=True))
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("override", sa.Text(), nullable=True))
    # Gates and notices from before this revision were complete when written.
    op.execute("UPDATE gate_policy SET announced_at = 0")
    op.execute("UPDATE notifications SET sent_at = at")


def downgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("override")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("sent_at")
    with op.batch_alter_table("gate_policy") as batch:
        batch.drop_column("announced_at")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("scheme")
