"""Banks: per-bank vPDQ thresholds (query and compared match percentages).

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("banks") as batch:
        batch.add_column(
            sa.Column("vpdq_query_percent", sa.Float, nullable=False, server_default="80")
        )
        batch.add_column(
            sa.Column("vpdq_compared_percent", sa.Float, nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("banks") as batch:
        batch.drop_column("vpdq_compared_percent")
        batch.drop_column("vpdq_query_percent")
