"""Statements of reasons (DSA Art. 17) and their filing in the Transparency Database.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "statements",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("puid", sa.String(500), nullable=False),
        sa.Column("case_id", Id, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", Stamp),
        sa.Column("batch", sa.String(40)),
        sa.Column("lease_until", Stamp),
        sa.Column("last_error", sa.Text),
        sa.Column("tdb_uuid", sa.String(100)),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("filed_at", Stamp),
        sa.PrimaryKeyConstraint("id", name="pk_statements"),
        sa.UniqueConstraint("puid", name="uq_statements_puid"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_statements_case_id_cases"),
    )
    op.create_index("ix_statements_case_id", "statements", ["case_id"])
    op.create_index("ix_statements_state", "statements", ["state", "id"])
    op.create_table(
        "statement_settings",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("sealed", sa.JSON, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_statement_settings"),
    )


def downgrade() -> None:
    op.drop_table("statement_settings")
    op.drop_index("ix_statements_state", table_name="statements")
    op.drop_index("ix_statements_case_id", table_name="statements")
    op.drop_table("statements")
