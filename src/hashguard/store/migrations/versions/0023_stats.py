"""Statistics: daily counts per metric and labels, daily histograms of measured times.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stats_counts",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("metric", sa.String(40), nullable=False),
        sa.Column("labels", sa.String(600), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("day", "metric", "labels", name="pk_stats_counts"),
    )
    op.create_table(
        "stats_timings",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("timing", sa.String(40), nullable=False),
        sa.Column("bucket", sa.Integer, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("day", "timing", "bucket", name="pk_stats_timings"),
    )


def downgrade() -> None:
    op.drop_table("stats_timings")
    op.drop_table("stats_counts")
