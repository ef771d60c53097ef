"""Per-bank policy bands and shadow mode; the decision kept with each scan result.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing banks get the default policy: exact and PDQ <= 10 act, the rest of the
    # bank's threshold goes to review, no shadow mode.
    with op.batch_alter_table("banks") as batch:
        batch.add_column(sa.Column("auto_max_distance", sa.Integer, server_default="10"))
        batch.add_column(sa.Column("review_max_distance", sa.Integer))
        batch.add_column(
            sa.Column("exact_action", sa.String(16), nullable=False, server_default="act")
        )
        batch.add_column(sa.Column("shadow", sa.Boolean, nullable=False, server_default=sa.false()))
    # Results recorded before this revision have no decision (read back as legacy).
    with op.batch_alter_table("scan_results") as batch:
        batch.add_column(sa.Column("decision", sa.JSON))
        batch.add_column(sa.Column("action", sa.String(16)))


def downgrade() -> None:
    with op.batch_alter_table("scan_results") as batch:
        batch.drop_column("action")
        batch.drop_column("decision")
    with op.batch_alter_table("banks") as batch:
        batch.drop_column("shadow")
        batch.drop_column("exact_action")
        batch.drop_column("review_max_distance")
        batch.drop_column("auto_max_distance")
