"""Alembic environment: runs on the engine hashguard hands over, never on a URL of its own."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from hashguard.store.schema import metadata

engine = context.config.attributes["engine"]
assert isinstance(engine, Engine)

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
