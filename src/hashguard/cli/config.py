"""``hashguard config``: the effective settings."""

from __future__ import annotations

import json

import typer

from hashguard.cli.context import out, settings_of

app = typer.Typer(help="Settings.", no_args_is_help=True)


@app.command()
def show(ctx: typer.Context) -> None:
    """Print the effective settings as JSON, secrets masked."""
    out.print(json.dumps(settings_of(ctx).masked(), indent=2, default=str), markup=False)
