"""Kept signals (hashes of checked items) and the retro-matcher's checkpoint.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "kept_signals",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("way", sa.String(16), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_seq", sa.BigInteger, nullable=False),
        sa.Column("run_id", Id),
        sa.Column("path", sa.Text),
        sa.Column("object_bucket", sa.String(255)),
        sa.Column("object_key", sa.Text),
        sa.Column("object_version", sa.String(1024)),
        sa.Column("object_etag", sa.String(200)),
        sa.Column("content_id", sa.Text),
        sa.Column("request_id", sa.Text),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("md5", sa.String(32), nullable=False),
        sa.Column("sha1", sa.String(40), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("pdq", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kept_signals"),
    )
    for column in ("md5", "sha1", "sha256", "checked_at"):
        op.create_index(f"ix_kept_signals_{column}", "kept_signals", [column])
    op.create_table(
        "retro_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_retro_state"),
    )


def downgrade() -> None:
    op.drop_table("retro_state")
    for column in ("checked_at", "sha256", "sha1", "md5"):
        op.drop_index(f"ix_kept_signals_{column}", "kept_signals")
    op.drop_table("kept_signals")
