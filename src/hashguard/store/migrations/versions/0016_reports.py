"""Reports to national channels: the report state machine, its steps and sink settings.

Revision ID: 0016
Revises: 0014 (re-chained after 0015 at merge)
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("case_id", Id, nullable=False),
        sa.Column("sink", sa.String(40), nullable=False),
        sa.Column("environment", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("remote_id", sa.String(100)),
        sa.Column("intent", sa.String(100)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", Stamp),
        sa.Column("last_error", sa.Text),
        sa.Column("receipt", sa.JSON),
        sa.Column("data_key", sa.LargeBinary, nullable=False),
        sa.Column("leased_until", Stamp),
        sa.Column("lease_owner", sa.String(100)),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
        sa.Column("finished_at", Stamp),
        sa.Column("version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reports"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_reports_case_id_cases"),
        sa.UniqueConstraint("case_id", "sink", name="uq_reports_case_id_sink"),
    )
    op.create_index("ix_reports_state", "reports", ["state"])
    op.create_table(
        "report_files",
        sa.Column("report_id", Id, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("evidence_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("md5", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("file_id", sa.String(100)),
        sa.Column("details", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("report_id", "seq", name="pk_report_files"),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["reports.id"],
            name="fk_report_files_report_id_reports",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "report_steps",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("report_id", Id, nullable=False),
        sa.Column("at", Stamp, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("step", sa.String(40), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("code", sa.Integer),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("part", sa.String(36)),
        sa.Column("request", sa.LargeBinary),
        sa.Column("response", sa.LargeBinary),
        sa.PrimaryKeyConstraint("id", name="pk_report_steps"),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["reports.id"],
            name="fk_report_steps_report_id_reports",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_report_steps_report_id", "report_steps", ["report_id"])
    op.create_table(
        "report_settings",
        sa.Column("sink", sa.String(40), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("sealed", sa.JSON, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("sink", name="pk_report_settings"),
    )


def downgrade() -> None:
    op.drop_table("report_settings")
    op.drop_index("ix_report_steps_report_id", table_name="report_steps")
    op.drop_table("report_steps")
    op.drop_table("report_files")
    op.drop_index("ix_reports_state", table_name="reports")
    op.drop_table("reports")
