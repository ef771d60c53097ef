"""DSA Art. 16 notices: received through the API or the public form, resolved to the
platform's content through its callback.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("category", sa.String(60), nullable=False),
        sa.Column("explanation", sa.Text, nullable=False),
        sa.Column("notifier", sa.JSON, nullable=False),
        sa.Column("good_faith", sa.Boolean, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("items", sa.JSON, nullable=False),
        sa.Column("token_id", Id),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", Stamp),
        sa.Column("last_error", sa.Text),
        sa.Column("received_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
        sa.Column("resolved_at", Stamp),
        sa.PrimaryKeyConstraint("id", name="pk_notices"),
    )
    op.create_index("ix_notices_queue", "notices", ["state", "priority", "received_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_notices_queue", table_name="notices")
    op.drop_table("notices")
