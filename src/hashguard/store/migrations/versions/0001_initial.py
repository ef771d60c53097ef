"""Banks, bank entries with tombstones, import history, scan runs and their results.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "banks",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("pdq_threshold", sa.Integer, nullable=False),
        sa.Column("source", sa.Text),
        sa.Column("licence", sa.Text),
        sa.Column("version", sa.Text),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("imported_at", Stamp),
        sa.PrimaryKeyConstraint("id", name="pk_banks"),
        sa.UniqueConstraint("name", name="uq_banks_name"),
    )
    op.create_table(
        "bank_entries",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("bank_id", Id, nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("entry_id", sa.Text),
        sa.Column("category", sa.Text),
        sa.Column("meta", sa.JSON),
        sa.Column("added_at", Stamp, nullable=False),
        sa.Column("added_version", sa.Text),
        sa.Column("removed_at", Stamp),
        sa.Column("removed_version", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_bank_entries"),
        sa.ForeignKeyConstraint(
            ["bank_id"], ["banks.id"], name="fk_bank_entries_bank_id_banks", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("bank_id", "algorithm", "value", name="uq_bank_entries_signal"),
    )
    op.create_index("ix_bank_entries_lookup", "bank_entries", ["algorithm", "value"])
    op.create_table(
        "bank_imports",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("bank_id", Id, nullable=False),
        sa.Column("version", sa.Text),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("imported_at", Stamp, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("added", sa.Integer, nullable=False),
        sa.Column("updated", sa.Integer, nullable=False),
        sa.Column("unchanged", sa.Integer, nullable=False),
        sa.Column("removed", sa.Integer, nullable=False),
        sa.Column("restored", sa.Integer, nullable=False),
        sa.Column("invalid", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_bank_imports"),
        sa.ForeignKeyConstraint(
            ["bank_id"], ["banks.id"], name="fk_bank_imports_bank_id_banks", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_bank_imports_bank_id", "bank_imports", ["bank_id"])
    op.create_table(
        "scan_runs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("roots", sa.JSON, nullable=False),
        sa.Column("resume_key", sa.String(64), nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", Stamp, nullable=False),
        sa.Column("finished_at", Stamp),
        sa.Column("pid", sa.Integer),
        sa.Column("host", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_scan_runs"),
    )
    op.create_index("ix_scan_runs_resume_key", "scan_runs", ["resume_key"])
    op.create_table(
        "scan_results",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("run_id", Id, nullable=False),
        sa.Column("path_key", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("size", sa.BigInteger),
        sa.Column("md5", sa.String(32)),
        sa.Column("sha1", sa.String(40)),
        sa.Column("sha256", sa.String(64)),
        sa.Column("pdq", sa.JSON),
        sa.Column("image_format", sa.String(16)),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.Column("matches", sa.JSON),
        sa.Column("scanned_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_scan_results"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["scan_runs.id"],
            name="fk_scan_results_run_id_scan_runs",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("run_id", "path_key", name="uq_scan_results_path"),
    )
    op.create_index("ix_scan_results_run_outcome", "scan_results", ["run_id", "outcome"])


def downgrade() -> None:
    op.drop_table("scan_results")
    op.drop_table("scan_runs")
    op.drop_table("bank_imports")
    op.drop_table("bank_entries")
    op.drop_table("banks")
