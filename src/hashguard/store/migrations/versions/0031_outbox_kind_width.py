"""The outbox's ``kind`` takes the longest action kind on PostgreSQL: ``object_quarantine``
(17 characters) did not fit its ``varchar(16)``, so no object quarantine could be queued.

SQLite keeps any length in a VARCHAR, and rebuilding the outbox there (batch mode) would
drop a table the quarantine records point at: the schema keeps 16 for SQLite
(``schema.action_outbox``) and only PostgreSQL changes.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.alter_column(
        "action_outbox",
        "kind",
        type_=sa.String(32),
        existing_type=sa.String(16),
        existing_nullable=False,
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.alter_column(
        "action_outbox",
        "kind",
        type_=sa.String(16),
        existing_type=sa.String(32),
        existing_nullable=False,
    )
