"""Reveals: which frame of a video was revealed (its time in milliseconds; NULL for the
whole content of an image case).

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reveals") as batch:
        batch.add_column(sa.Column("frame_ms", sa.BigInteger))


def downgrade() -> None:
    with op.batch_alter_table("reveals") as batch:
        batch.drop_column("frame_ms")
