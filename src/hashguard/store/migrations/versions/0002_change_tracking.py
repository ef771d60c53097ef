"""Change tracking for match indexes: bank_entries.change_seq and the bank_state row.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bank_entries") as batch:
        batch.add_column(sa.Column("change_seq", sa.BigInteger, nullable=False, server_default="0"))
        batch.create_index("ix_bank_entries_change_seq", ["change_seq"])
    state = op.create_table(
        "bank_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("store_id", sa.String(36), nullable=False),
        sa.Column("change_seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_bank_state"),
    )
    op.bulk_insert(state, [{"id": 1, "store_id": str(uuid.uuid4()), "change_seq": 0}])


def downgrade() -> None:
    op.drop_table("bank_state")
    with op.batch_alter_table("bank_entries") as batch:
        batch.drop_index("ix_bank_entries_change_seq")
        batch.drop_column("change_seq")
