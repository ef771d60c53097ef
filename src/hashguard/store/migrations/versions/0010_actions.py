"""The transactional outbox of actions, deliveries and quarantine records.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

Stamp = sa.DateTime(timezone=True)
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "action_outbox",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("event", sa.String(64)),
        sa.Column("target", sa.String(100)),
        sa.Column("idempotency_key", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(300)),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", Stamp, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("delivered_at", Stamp),
        sa.Column("dead_at", Stamp),
        sa.Column("retried_at", Stamp),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_until", Stamp),
        sa.UniqueConstraint("idempotency_key", name="uq_action_outbox_idempotency_key"),
    )
    op.create_index("ix_action_outbox_due", "action_outbox", ["state", "next_attempt_at"])
    op.create_table(
        "quarantine_records",
        sa.Column("action_id", Id, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("original_path", sa.Text, nullable=False),
        sa.Column("original_path_raw", sa.LargeBinary, nullable=False),
        sa.Column("quarantine_path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mode", sa.Integer, nullable=False),
        sa.Column("uid", sa.Integer, nullable=False),
        sa.Column("gid", sa.Integer, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("quarantined_at", Stamp),
        sa.Column("restored_at", Stamp),
        sa.Column("restored_by", sa.Text),
        sa.PrimaryKeyConstraint("action_id", name="pk_quarantine_records"),
        sa.ForeignKeyConstraint(
            ["action_id"],
            ["action_outbox.id"],
            name="fk_quarantine_records_action_id_action_outbox",
        ),
    )


def downgrade() -> None:
    op.drop_table("quarantine_records")
    op.drop_index("ix_action_outbox_due", "action_outbox")
    op.drop_table("action_outbox")
