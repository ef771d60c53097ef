"""Hotline referrals: tasks to file a confirmed case by hand on a hotline's web form.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)
LIVE = sa.text("state IN ('open', 'done')")


def upgrade() -> None:
    op.create_table(
        "referral_tasks",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("case_id", Id, nullable=False),
        sa.Column("hotline", sa.String(40), nullable=False),
        sa.Column("form_url", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("facts", sa.JSON, nullable=False),
        sa.Column("reference", sa.String(200)),
        sa.Column("cancel_reason", sa.Text),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("closed_at", Stamp),
        sa.Column("closed_by", sa.String(200)),
        sa.PrimaryKeyConstraint("id", name="pk_referral_tasks"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_referral_tasks_case_id_cases"),
    )
    op.create_index("ix_referral_tasks_case_id", "referral_tasks", ["case_id"])
    op.create_index("ix_referral_tasks_state", "referral_tasks", ["state", "id"])
    op.create_index(
        "uq_referral_tasks_live",
        "referral_tasks",
        ["case_id", "hotline"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )


def downgrade() -> None:
    op.drop_index("uq_referral_tasks_live", table_name="referral_tasks")
    op.drop_index("ix_referral_tasks_state", table_name="referral_tasks")
    op.drop_index("ix_referral_tasks_case_id", table_name="referral_tasks")
    op.drop_table("referral_tasks")
