"""``hashguard db``: schema migrations."""

from __future__ import annotations

import typer

from hashguard.cli.context import err, settings_of
from hashguard.store.database import current_revision, head_revision, make_engine, upgrade

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_command(ctx: typer.Context) -> None:
    """Bring the database schema to this version (run once per release on PostgreSQL)."""
    engine = make_engine(settings_of(ctx).resolved_database_url)
    try:
        upgrade(engine)
        err.print(f"schema at revision {current_revision(engine)}")
    finally:
        engine.dispose()


@app.command("status")
def status(ctx: typer.Context) -> None:
    """Show the schema revision of the database and of this version."""
    engine = make_engine(settings_of(ctx).resolved_database_url)
    try:
        current, head = current_revision(engine), head_revision(engine)
        err.print(f"database: {current or 'empty'}; this version: {head}")
        if current != head:
            raise typer.Exit(1)
    finally:
        engine.dispose()
