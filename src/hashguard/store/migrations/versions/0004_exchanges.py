"""Exchanges: adapter, settings, sealed credentials, checkpoint and sync lease.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "exchanges",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("adapter", sa.String(40), nullable=False),
        sa.Column("bank_id", Id, nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("credential_names", sa.JSON, nullable=False),
        sa.Column("credentials", sa.LargeBinary),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("checkpoint", sa.Text),
        sa.Column("last_started_at", Stamp),
        sa.Column("last_success_at", Stamp),
        sa.Column("last_error", sa.Text),
        sa.Column("upserted", sa.BigInteger, nullable=False),
        sa.Column("removed", sa.BigInteger, nullable=False),
        sa.Column("skipped", sa.BigInteger, nullable=False),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_until", Stamp),
        sa.PrimaryKeyConstraint("id", name="pk_exchanges"),
        sa.UniqueConstraint("name", name="uq_exchanges_name"),
        sa.ForeignKeyConstraint(
            ["bank_id"],
            ["banks.id"],
            name="fk_exchanges_bank_id_banks",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("exchanges")
