"""Scan results keep what remote matchers answered; bank entries are found by entry id.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scan_results") as batch:
        batch.add_column(sa.Column("remote", sa.JSON))
    op.create_index("ix_bank_entries_bank_id", "bank_entries", ["bank_id", "entry_id"])


def downgrade() -> None:
    op.drop_index("ix_bank_entries_bank_id", "bank_entries")
    with op.batch_alter_table("scan_results") as batch:
        batch.drop_column("remote")
