"""Appeals (DSA Art. 20) against restrictions explained by statements of reasons.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "appeals",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("case_id", Id, nullable=False),
        sa.Column("statement_id", Id, nullable=False),
        sa.Column("explanation", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("received_at", Stamp, nullable=False),
        sa.Column("received_by", sa.String(200), nullable=False),
        sa.Column("decided_at", Stamp),
        sa.Column("decided_by", sa.String(200)),
        sa.Column("reason", sa.Text),
        sa.Column("decision_statement_id", Id),
        sa.Column("restoration", sa.String(16)),
        sa.Column("restoration_notes", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_appeals"),
        sa.UniqueConstraint("reference", name="uq_appeals_reference"),
        sa.UniqueConstraint("statement_id", name="uq_appeals_statement_id"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_appeals_case_id_cases"),
        sa.ForeignKeyConstraint(
            ["statement_id"], ["statements.id"], name="fk_appeals_statement_id_statements"
        ),
        sa.ForeignKeyConstraint(
            ["decision_statement_id"],
            ["statements.id"],
            name="fk_appeals_decision_statement_id_statements",
        ),
    )
    op.create_index("ix_appeals_case_id", "appeals", ["case_id"])
    op.create_index("ix_appeals_state", "appeals", ["state", "id"])


def downgrade() -> None:
    op.drop_index("ix_appeals_state", table_name="appeals")
    op.drop_index("ix_appeals_case_id", table_name="appeals")
    op.drop_table("appeals")
