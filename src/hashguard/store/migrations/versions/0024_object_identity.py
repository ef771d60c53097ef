"""Scan results name the object-storage object they came from: (bucket, key, version, etag).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scan_results") as batch:
        batch.add_column(sa.Column("object_bucket", sa.String(255)))
        batch.add_column(sa.Column("object_key", sa.Text))
        batch.add_column(sa.Column("object_version", sa.String(1024)))
        batch.add_column(sa.Column("object_etag", sa.String(200)))
    op.create_index("ix_scan_results_object", "scan_results", ["object_bucket", "object_key"])


def downgrade() -> None:
    op.drop_index("ix_scan_results_object", "scan_results")
    with op.batch_alter_table("scan_results") as batch:
        for name in ("object_etag", "object_version", "object_key", "object_bucket"):
            batch.drop_column(name)
