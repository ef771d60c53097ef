"""Quarantine in object storage; incremental rescans (skipped objects, kept signals by
object identity).

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "object_quarantines",
        sa.Column("action_id", Id, sa.ForeignKey("action_outbox.id"), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("bucket", sa.String(255), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("version_id", sa.String(1024)),
        sa.Column("etag", sa.String(200)),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("quarantine_bucket", sa.String(255), nullable=False),
        sa.Column("quarantine_key", sa.Text, nullable=False),
        sa.Column("quarantine_version_id", sa.String(1024)),
        sa.Column("lock", sa.String(16), nullable=False),
        sa.Column("lock_note", sa.Text),
        sa.Column("original", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("quarantined_at", sa.DateTime(timezone=True)),
        sa.Column("restored_at", sa.DateTime(timezone=True)),
        sa.Column("restored_by", sa.Text),
    )
    op.create_index("ix_object_quarantines_sha256", "object_quarantines", ["sha256"])
    op.create_index("ix_kept_signals_object", "kept_signals", ["object_bucket", "object_key"])
    with op.batch_alter_table("scan_runs") as batch:
        batch.add_column(sa.Column("skipped", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("scan_runs") as batch:
        batch.drop_column("skipped")
    op.drop_index("ix_kept_signals_object", "kept_signals")
    op.drop_index("ix_object_quarantines_sha256", "object_quarantines")
    op.drop_table("object_quarantines")
