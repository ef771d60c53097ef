"""Extra reveals granted beyond the exposure limit.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reveal_grants",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("extra", sa.Integer, nullable=False),
        sa.Column("granted_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", Stamp, nullable=False),
        sa.Column("expires_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reveal_grants"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_reveal_grants_user_id_users"),
    )
    op.create_index("ix_reveal_grants_user_expires", "reveal_grants", ["user_id", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_reveal_grants_user_expires", table_name="reveal_grants")
    op.drop_table("reveal_grants")
