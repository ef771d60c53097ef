"""People, UI sessions, login failures, pending OIDC sign-ins, reveals; token owners.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("display_name", sa.String(200)),
        sa.Column("password_hash", sa.Text),
        sa.Column("oidc_subject", sa.String(600)),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
        sa.UniqueConstraint("email", name="uq_users_email"),
        sa.UniqueConstraint("oidc_subject", name="uq_users_oidc_subject"),
    )
    op.create_table(
        "ui_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("ip", sa.String(64)),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("last_seen_at", Stamp, nullable=False),
        sa.Column("revoked_at", Stamp),
        sa.PrimaryKeyConstraint("id", name="pk_ui_sessions"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_ui_sessions_user_id_users"),
    )
    op.create_index("ix_ui_sessions_user_id", "ui_sessions", ["user_id"])
    op.create_table(
        "login_failures",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_failures"),
    )
    op.create_index("ix_login_failures_key_at", "login_failures", ["key", "at"])
    op.create_table(
        "oidc_pending",
        sa.Column("state", sa.String(100), nullable=False),
        sa.Column("nonce", sa.String(100), nullable=False),
        sa.Column("code_verifier", sa.String(200), nullable=False),
        sa.Column("return_to", sa.String(500)),
        sa.Column("created_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("state", name="pk_oidc_pending"),
    )
    op.create_table(
        "reveals",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("case_id", Id, nullable=False),
        sa.Column("session_id", sa.String(64)),
        sa.Column("at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reveals"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_reveals_user_id_users"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_reveals_case_id_cases"),
    )
    op.create_index("ix_reveals_user_at", "reveals", ["user_id", "at"])
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("user_id", Id))
        batch.create_foreign_key("fk_api_tokens_user_id_users", "users", ["user_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint("fk_api_tokens_user_id_users", type_="foreignkey")
        batch.drop_column("user_id")
    op.drop_index("ix_reveals_user_at", table_name="reveals")
    op.drop_table("reveals")
    op.drop_table("oidc_pending")
    op.drop_index("ix_login_failures_key_at", table_name="login_failures")
    op.drop_table("login_failures")
    op.drop_index("ix_ui_sessions_user_id", table_name="ui_sessions")
    op.drop_table("ui_sessions")
    op.drop_table("users")
