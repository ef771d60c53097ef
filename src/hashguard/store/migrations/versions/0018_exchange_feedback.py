"""Feedback to exchanges: whether final review decisions are told back, and with which
reason a false positive goes.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing exchanges get none: feedback leaves only once someone switches it on.
    with op.batch_alter_table("exchanges") as batch:
        batch.add_column(
            sa.Column("feedback", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("feedback_reason", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("exchanges") as batch:
        batch.drop_column("feedback_reason")
        batch.drop_column("feedback")
