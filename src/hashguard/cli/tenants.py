"""``hashguard tenants``: the organisations a hash check service answers lookups for.

Each tenant has a contact, a quota of hashes a UTC day and optionally its own rate
limit; its tokens (``tokens create NAME --tenant T --scope lookup``) may only look
hashes up and read the tenant's own use (``GET /v1/tenant``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from hashguard.audit import cli_actor
from hashguard.cli.context import err, fail, out, store_of
from hashguard.domain.tenants import (
    TenantState,
    parse_quota,
    parse_rate,
    tenant_to_json,
    usage_to_json,
)
from hashguard.domain.tokens import token_to_json
from hashguard.services import tenants as service
from hashguard.store.tenants import TenantExists, UnknownTenant

app = typer.Typer(help="Tenants of the hash check service.", no_args_is_help=True)


def _rate(rate: float | None) -> str:
    return "server default" if rate is None else f"{rate:g}/s"


@app.command()
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The tenant's name (lowercase, e.g. small-host-42).")],
    contact: Annotated[str, typer.Option(help="Who to write to (an e-mail address).")],
    quota: Annotated[str, typer.Option(help="Hashes it may look up a UTC day, e.g. 100000/day.")],
    rate: Annotated[
        str | None, typer.Option(help="Hashes a second, e.g. 50/s (default: the server's).")
    ] = None,
) -> None:
    """Add a tenant (active at once)."""
    try:
        per_day = parse_quota(quota)
        per_second = parse_rate(rate) if rate is not None else None
    except ValueError as exc:
        raise fail(str(exc)) from None
    with store_of(ctx) as store:
        try:
            tenant = service.add_tenant(
                store,
                cli_actor(),
                name,
                contact=contact,
                quota_per_day=per_day,
                rate_per_second=per_second,
            )
        except (service.InvalidTenant, TenantExists) as exc:
            raise fail(str(exc)) from None
    err.print(
        f"tenant {tenant.name!r} added: {tenant.quota_per_day} hashes a day, "
        f"rate {_rate(tenant.rate_per_second)}. Give it a token: hashguard tokens create "
        f"{tenant.name}-lookup --tenant {tenant.name} --scope lookup"
    )


@app.command("list")
def list_tenants(
    ctx: typer.Context,
    matches: Annotated[
        bool,
        typer.Option(
            "--matches",
            help="Only tenants whose lookups matched in the last --days UTC days, most first "
            "(whom to follow up with; counts only, never hashes or files).",
        ),
    ] = False,
    days: Annotated[int, typer.Option(min=1, max=366, help="Days --matches counts.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Tenants with their quota, rate, state and today's use."""
    today = datetime.now(UTC).date()
    with store_of(ctx) as store:
        rows = [(t, store.tenants.used(t.id, today)) for t in store.tenants.list()]
        window = store.tenants.all_days(today - timedelta(days=days - 1), today)
    hashes: dict[str, int] = {}
    matched: dict[str, int] = {}
    for name, day in window:
        hashes[name] = hashes.get(name, 0) + day.hashes
        matched[name] = matched.get(name, 0) + day.matched
    if matches:
        rows = sorted(
            ((t, used) for t, used in rows if matched.get(t.name, 0) > 0),
            key=lambda r: (-matched[r[0].name], r[0].name),
        )
    if as_json:
        out.print(
            json.dumps(
                [
                    {
                        **tenant_to_json(t),
                        "used_today": used,
                        **(
                            {
                                "days": days,
                                "hashes": hashes.get(t.name, 0),
                                "matched": matched.get(t.name, 0),
                            }
                            if matches
                            else {}
                        ),
                    }
                    for t, used in rows
                ]
            ),
            markup=False,
        )
        return
    columns = ["name", "contact", "quota/day", "used today", "rate", "state"]
    if matches:
        columns += [f"hashes ({days} d)", f"matched ({days} d)"]
    table = Table(*columns)
    for tenant, used in rows:
        cells = [
            tenant.name,
            tenant.contact,
            str(tenant.quota_per_day),
            str(used),
            _rate(tenant.rate_per_second),
            str(tenant.state),
        ]
        if matches:
            cells += [str(hashes.get(tenant.name, 0)), str(matched.get(tenant.name, 0))]
        table.add_row(*cells)
    out.print(table)


@app.command()
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The tenant's name.")],
    days: Annotated[int, typer.Option(min=1, max=366, help="Days of use to show.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """A tenant's quota, its use per UTC day and its tokens: what the tenant itself sees."""
    with store_of(ctx) as store:
        try:
            tenant = store.tenants.named(name)
        except UnknownTenant as exc:
            raise fail(str(exc)) from None
        usage = service.tenant_usage(store, tenant, now=datetime.now(UTC), days=days)
        tokens = [token_to_json(t, user=None) for t in store.tokens.of_tenant(tenant.id)]
    if as_json:
        out.print(json.dumps(usage_to_json(usage, tokens=tokens)), markup=False)
        return
    out.print(
        f"{tenant.name} ({tenant.state}), contact {tenant.contact}\n"
        f"quota {tenant.quota_per_day} hashes a UTC day, rate {_rate(tenant.rate_per_second)}\n"
        f"today ({usage.today}): {usage.used_today} used, {usage.remaining_today} left",
        markup=False,
    )
    table = Table("day (UTC)", "calls", "hashes", "matched")
    for day in usage.days:
        table.add_row(day.day.isoformat(), str(day.calls), str(day.hashes), str(day.matched))
    out.print(table)
    out.print(
        "tokens: " + (", ".join(f"#{t['id']} {t['name']}" for t in tokens) if tokens else "none"),
        markup=False,
    )


def _set_state(ctx: typer.Context, name: str, state: TenantState) -> None:
    with store_of(ctx) as store:
        try:
            tenant = service.set_tenant_state(store, cli_actor(), name, state)
        except UnknownTenant as exc:
            raise fail(str(exc)) from None
    err.print(f"tenant {tenant.name!r} is {tenant.state}")


@app.command()
def suspend(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The tenant.")]) -> None:
    """Refuse the tenant's tokens (within a few seconds on every server)."""
    _set_state(ctx, name, TenantState.SUSPENDED)


@app.command()
def resume(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The tenant.")]) -> None:
    """Serve a suspended tenant's tokens again."""
    _set_state(ctx, name, TenantState.ACTIVE)
