"""``hashguard plugins`` and ``hashguard keys``: installed adapters, and the master key."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from hashguard.cli.context import err, out, registry_of, settings_of, store_of
from hashguard.keys import generate
from hashguard.plugins import AdapterKind, Registry
from hashguard.remote.health import RECENT, ServiceHealth, service_health

app = typer.Typer(
    help="Adapters: hashers, exchanges, remote matchers, classifiers.", no_args_is_help=True
)
keys_app = typer.Typer(help="The master key that seals credentials.", no_args_is_help=True)


@app.command("list")
def list_plugins(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Every installed adapter, its kind, where it comes from, and whether it is enabled;
    then each configured remote service and classifier (``remote.<name>``) with its mode
    (test or live), its last recorded answer and its share of not_answered in the last
    hour (in JSON: under its adapter's ``configured``)."""
    registry = registry_of(ctx)
    installed = registry.installed()
    configured = _configured(ctx, registry)
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
                **(
                    {"configured": [h.to_json() for h in configured if h.adapter == a.name]}
                    if a.kind in (AdapterKind.REMOTE_MATCHER, AdapterKind.CLASSIFIER)
                    else {}
                ),
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
    if configured:
        services = Table("configured", "adapter", "kind", "mode", "recorded")
        for h in configured:
            services.add_row(h.name, h.adapter, h.kind or "not installed", h.mode, h.describe())
        out.print(services)


def _configured(ctx: typer.Context, registry: Registry) -> list[ServiceHealth]:
    """The configured remote services as the store's records show them now (without
    them when the store cannot be read: said on stderr)."""
    settings = settings_of(ctx)
    if not settings.remote:
        return []
    now = datetime.now(UTC)
    try:
        with store_of(ctx) as store:
            return service_health(
                settings.remote, registry, store.scans.recent_remote(RECENT), store.stats, now=now
            )
    except Exception as exc:  # noqa: BLE001 - the list shows without records, and says why
        err.print(f"[yellow]warning:[/yellow] no records read ({type(exc).__name__})")
        return service_health(settings.remote, registry, (), None, now=now)


@keys_app.command("generate")
def generate_key() -> None:
    """Print a new random master key (base64 of 32 bytes) for HASHGUARD_MASTER_KEY(_FILE)."""
    out.print(generate(), markup=False)
