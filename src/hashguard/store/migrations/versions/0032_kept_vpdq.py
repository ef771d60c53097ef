"""Kept signals: a video's reference vPDQ frames, so retro-matching finds it by vPDQ.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable, no default: kept signals written before keep no frames (not a video,
    # or a video kept before its frames were)
    with op.batch_alter_table("kept_signals") as batch:
        batch.add_column(sa.Column("vpdq", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("kept_signals") as batch:
        batch.drop_column("vpdq")
