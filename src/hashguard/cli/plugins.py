"""``hashguard plugins`` and ``hashguard keys``: installed adapters, and the master key."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from hashguard.cli.context import out, registry_of
from hashguard.keys import generate

app = typer.Typer(help="Adapters: hashers, exchanges, remote matchers.", no_args_is_help=True)
keys_app = typer.Typer(help="The master key that seals credentials.", no_args_is_help=True)


@app.command("list")
def list_plugins(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Every installed adapter, its kind, where it comes from, and whether it is enabled."""
    installed = registry_of(ctx).installed()
    if as_json:
        rows = [
            {
                "name": a.name,
                "kind": str(a.kind),
                "enabled": a.enabled,
                "distribution": a.distribution,
                "description": a.description,
                "credentials": list(a.adapter.secrets),
                "terms": a.adapter.terms,
            }
            for a in installed
        ]
        out.print(json.dumps(rows), markup=False)
        return
    table = Table("name", "kind", "enabled", "from", "needs", "description")
    for a in installed:
        table.add_row(
            a.name,
            str(a.kind),
            "yes" if a.enabled else "no",
            a.distribution,
            ", ".join(a.adapter.secrets),
            a.description,
        )
    out.print(table)


@keys_app.command("generate")
def generate_key() -> None:
    """Print a new random master key (base64 of 32 bytes) for HASHGUARD_MASTER_KEY(_FILE)."""
    out.print(generate(), markup=False)
