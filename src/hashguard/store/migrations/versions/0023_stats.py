"""Statistics: daily (and monthly) counts per metric and labels, histograms of measured times.

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
    op.create_table(
        "stats_counts_monthly",
        sa.Column("month", sa.Date, nullable=False),
        sa.Column("metric", sa.String(40), nullable=False),
        sa.Column("labels", sa.String(600), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("month", "metric", "labels", name="pk_stats_counts_monthly"),
    )
    op.create_table(
        "stats_timings_monthly",
        sa.Column("month", sa.Date, nullable=False),
        sa.Column("timing", sa.String(40), nullable=False),
        sa.Column("bucket", sa.Integer, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("month", "timing", "bucket", name="pk_stats_timings_monthly"),
    )


def downgrade() -> None:
    op.drop_table("stats_timings_monthly")
    op.drop_table("stats_counts_monthly")
    op.drop_table("stats_timings")
    op.drop_table("stats_counts")
