"""``hashguard tokens``: API tokens, shown once at creation and stored only as a hash.

A token made with ``--user NAME`` acts for that person: the case API (``cases:review``)
lets it do only what the person's role allows, records each step as
``token:<id>/as:<name>``, and stops serving it when the person is disabled."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from hashguard.audit import cli_actor
from hashguard.cli.context import err, fail, out, store_of
from hashguard.domain.tokens import Scope, token_to_json
from hashguard.services import tokens as service
from hashguard.services.people import UnknownPerson
from hashguard.services.tokens import PersonDisabled, TenantTokenRefused
from hashguard.store.tenants import UnknownTenant
from hashguard.store.tokens import UnknownToken

app = typer.Typer(help="API tokens for `hashguard serve`.", no_args_is_help=True)

_DURATION = re.compile(r"^(\d+)([hdw])$")


def _expiry(text: str | None) -> datetime | None:
    if text is None:
        return None
    found = _DURATION.match(text)
    if not found:
        raise fail("--expires takes a duration like 12h, 30d or 8w")
    amount, unit = int(found.group(1)), found.group(2)
    hours = {"h": 1, "d": 24, "w": 24 * 7}[unit] * amount
    return datetime.now(UTC) + timedelta(hours=hours)


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Who or what uses the token.")],
    scope: Annotated[list[Scope], typer.Option("--scope", help="Repeat for several scopes.")],
    expires: Annotated[str | None, typer.Option(help="Lifetime, e.g. 90d (default: none).")] = None,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            help="The person the token acts for (needed to decide and assign cases "
            "through the API; it may then do only what their role allows).",
        ),
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            help="The tenant of the hash check service the token belongs to (then "
            "--scope lookup only; its lookups count against the tenant's quota).",
        ),
    ] = None,
) -> None:
    """Create a token. The secret is printed once, on stdout, and cannot be shown again."""
    expires_at = _expiry(expires)
    with store_of(ctx) as store:
        try:
            token, secret, owner = service.create_token(
                store, cli_actor(), name, scope, expires_at=expires_at, user=user, tenant=tenant
            )
        except (UnknownPerson, PersonDisabled, UnknownTenant, TenantTokenRefused) as exc:
            raise fail(str(exc)) from None
    err.print(
        f"token #{token.id} {token.name!r} with scopes {', '.join(sorted(map(str, token.scopes)))}"
        + (f", acting for {owner.name} ({owner.role})" if owner else "")
        + (f", for tenant {token.tenant}" if token.tenant else "")
        + (f", expires {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "")
        + ". Store the secret now: it is not kept."
    )
    out.print(secret, markup=False)


@app.command("list")
def list_tokens(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Tokens with their scopes and state (never their secrets)."""
    with store_of(ctx) as store:
        tokens = [(t, store.people.token_owner(t.id)) for t in store.tokens.list()]
    if as_json:
        out.print(
            json.dumps(
                [token_to_json(t, user=owner.name if owner else None) for t, owner in tokens]
            ),
            markup=False,
        )
        return
    now = datetime.now(UTC)
    table = Table("id", "name", "user", "tenant", "scopes", "state", "last used (UTC)")
    for token, owner in tokens:
        state = "revoked" if token.revoked_at else "expired" if not token.usable(now) else "active"
        last = token.last_used_at.strftime("%Y-%m-%d %H:%M") if token.last_used_at else ""
        who = "" if owner is None else f"{owner.name} (disabled)" if owner.disabled else owner.name
        table.add_row(
            str(token.id),
            token.name,
            who,
            token.tenant or "",
            " ".join(sorted(map(str, token.scopes))),
            state,
            last,
        )
    out.print(table)


@app.command()
def revoke(
    ctx: typer.Context, token_id: Annotated[int, typer.Argument(help="The token's id.")]
) -> None:
    """Revoke a token; servers refuse it within a few seconds."""
    with store_of(ctx) as store:
        try:
            token = service.revoke_token(store, cli_actor(), token_id)
        except UnknownToken as exc:
            raise fail(str(exc)) from None
    err.print(f"token #{token.id} {token.name!r} revoked")
