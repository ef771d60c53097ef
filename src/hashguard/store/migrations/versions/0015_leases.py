"""Leases of background jobs (exchange sync, retention, housekeeping) shared by processes.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("holder", sa.String(200)),
        sa.Column("acquired_at", Stamp),
        sa.Column("expires_at", Stamp),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("completed_at", Stamp),
        sa.Column("completed_by", sa.String(200)),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    op.drop_table("leases")
