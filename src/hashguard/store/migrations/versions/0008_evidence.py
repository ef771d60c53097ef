"""The evidence vault: encrypted items, retention and legal holds.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "evidence_items",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("retain_until", Stamp, nullable=False),
        sa.Column("jurisdiction", sa.String(16), nullable=False),
        sa.Column("legal_hold", sa.Boolean, nullable=False),
        sa.Column("hold_reason", sa.Text),
        sa.Column("held_at", Stamp),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("data_key", sa.LargeBinary),
        sa.Column("context", sa.LargeBinary),
        sa.Column("destroyed_at", Stamp),
        sa.Column("destroyed_by", sa.Text),
        sa.Column("destroy_reason", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_evidence_items"),
    )
    op.create_index("ix_evidence_items_retain_until", "evidence_items", ["retain_until"])


def downgrade() -> None:
    op.drop_index("ix_evidence_items_retain_until", "evidence_items")
    op.drop_table("evidence_items")
