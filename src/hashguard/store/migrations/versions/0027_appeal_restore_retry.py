"""Appeals: the automatic retries of a reversal's restoration (attempts, next try).

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("appeals") as batch:
        batch.add_column(
            sa.Column("restore_attempts", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("restore_after", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("appeals") as batch:
        batch.drop_column("restore_after")
        batch.drop_column("restore_attempts")
