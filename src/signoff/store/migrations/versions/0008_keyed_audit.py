"""The keyed audit chain: each entry says which hash scheme it was written with.

Entries already in the log were chained with plain sha256 and keep ``sha256``; new ones are
HMAC-SHA256 under the audit key (``hmac-sha256``). This revision also joins the two lines
of migrations (0006 and 0007) into one head.

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


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("scheme")
