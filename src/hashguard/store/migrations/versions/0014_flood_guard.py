"""The flood guard: per-bank limits, per-entry distinct-content counters and flags.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "flood_limits",
        sa.Column("bank_id", Id, nullable=False),
        sa.Column("max_items", sa.Integer),
        sa.Column("window_seconds", sa.Integer, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("bank_id", name="pk_flood_limits"),
        sa.ForeignKeyConstraint(
            ["bank_id"], ["banks.id"], name="fk_flood_limits_bank_id_banks", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "flood_entries",
        sa.Column("entry_ref", Id, nullable=False),
        sa.Column("bank_id", Id, nullable=False),
        sa.Column("flag_id", sa.BigInteger),
        sa.Column("observed_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("entry_ref", name="pk_flood_entries"),
        sa.ForeignKeyConstraint(
            ["entry_ref"],
            ["bank_entries.id"],
            name="fk_flood_entries_entry_ref_bank_entries",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["bank_id"], ["banks.id"], name="fk_flood_entries_bank_id_banks", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_flood_entries_bank_id", "flood_entries", ["bank_id"])
    op.create_table(
        "flood_seen",
        sa.Column("entry_ref", Id, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("seen_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("entry_ref", "sha256", name="pk_flood_seen"),
        sa.ForeignKeyConstraint(
            ["entry_ref"],
            ["bank_entries.id"],
            name="fk_flood_seen_entry_ref_bank_entries",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_flood_seen_entry_seen", "flood_seen", ["entry_ref", "seen_at"])
    op.create_table(
        "flood_flags",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("entry_ref", sa.BigInteger, nullable=False),
        sa.Column("bank_id", sa.BigInteger, nullable=False),
        sa.Column("bank", sa.String(100), nullable=False),
        sa.Column("entry_id", sa.Text),
        sa.Column("category", sa.Text),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("flagged_at", Stamp, nullable=False),
        sa.Column("distinct_items", sa.Integer, nullable=False),
        sa.Column("max_items", sa.Integer, nullable=False),
        sa.Column("window_seconds", sa.Integer, nullable=False),
        sa.Column("paused_matches", sa.BigInteger, nullable=False),
        sa.Column("last_paused_at", Stamp),
        sa.Column("resolved_at", Stamp),
        sa.Column("resolved_by", sa.String(200)),
        sa.PrimaryKeyConstraint("id", name="pk_flood_flags"),
    )
    op.create_index("ix_flood_flags_state", "flood_flags", ["state"])
    op.create_index("ix_flood_flags_flagged_at", "flood_flags", ["flagged_at"])


def downgrade() -> None:
    op.drop_index("ix_flood_flags_flagged_at", table_name="flood_flags")
    op.drop_index("ix_flood_flags_state", table_name="flood_flags")
    op.drop_table("flood_flags")
    op.drop_index("ix_flood_seen_entry_seen", table_name="flood_seen")
    op.drop_table("flood_seen")
    op.drop_index("ix_flood_entries_bank_id", table_name="flood_entries")
    op.drop_table("flood_entries")
    op.drop_table("flood_limits")
