"""A notice's lease: which resolver is working on it, and until when, so two resolvers on
one store never resolve the same notice (and neither is locked out of the others).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notices") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(100)))
        batch.add_column(sa.Column("leased_until", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("notices") as batch:
        batch.drop_column("leased_until")
        batch.drop_column("lease_owner")
