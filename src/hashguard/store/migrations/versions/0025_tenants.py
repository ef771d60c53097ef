"""Tenants of the hash check service, their daily use, and tokens bound to a tenant.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("contact", sa.String(320), nullable=False),
        sa.Column("quota_per_day", sa.BigInteger, nullable=False),
        sa.Column("rate_per_second", sa.Float),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.UniqueConstraint("name", name="uq_tenants_name"),
    )
    op.create_table(
        "tenant_usage",
        sa.Column("tenant_id", Id, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("calls", sa.BigInteger, nullable=False),
        sa.Column("hashes", sa.BigInteger, nullable=False),
        sa.Column("matched", sa.BigInteger, nullable=False),
        sa.Column("refused", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("tenant_id", "day", name="pk_tenant_usage"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_tenant_usage_tenant_id_tenants",
            ondelete="CASCADE",
        ),
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("tenant_id", Id))
        batch.create_foreign_key(
            "fk_api_tokens_tenant_id_tenants", "tenants", ["tenant_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint("fk_api_tokens_tenant_id_tenants", type_="foreignkey")
        batch.drop_column("tenant_id")
    op.drop_table("tenant_usage")
    op.drop_table("tenants")
