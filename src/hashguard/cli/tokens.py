"""``hashguard tokens``: API tokens, shown once at creation and stored only as a hash."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from hashguard.audit import cli_actor, record
from hashguard.cli.context import err, fail, out, store_of
from hashguard.domain.tokens import Scope, Token
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


def _token_json(token: Token) -> dict[str, object]:
    return {
        "id": token.id,
        "name": token.name,
        "scopes": sorted(str(s) for s in token.scopes),
        "created_at": token.created_at.isoformat(),
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
    }


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Who or what uses the token.")],
    scope: Annotated[list[Scope], typer.Option("--scope", help="Repeat for several scopes.")],
    expires: Annotated[str | None, typer.Option(help="Lifetime, e.g. 90d (default: none).")] = None,
) -> None:
    """Create a token. The secret is printed once, on stdout, and cannot be shown again."""
    with store_of(ctx) as store:
        token, secret = store.tokens.create(name, scope, expires_at=_expiry(expires))
        record(store, cli_actor(), "token.created", f"token:{token.id}", **_token_json(token))
    err.print(
        f"token #{token.id} {token.name!r} with scopes {', '.join(sorted(map(str, token.scopes)))}"
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
        tokens = store.tokens.list()
    if as_json:
        out.print(json.dumps([_token_json(t) for t in tokens]), markup=False)
        return
    now = datetime.now(UTC)
    table = Table("id", "name", "scopes", "state", "last used (UTC)")
    for token in tokens:
        state = "revoked" if token.revoked_at else "expired" if not token.usable(now) else "active"
        last = token.last_used_at.strftime("%Y-%m-%d %H:%M") if token.last_used_at else ""
        table.add_row(
            str(token.id), token.name, " ".join(sorted(map(str, token.scopes))), state, last
        )
    out.print(table)


@app.command()
def revoke(
    ctx: typer.Context, token_id: Annotated[int, typer.Argument(help="The token's id.")]
) -> None:
    """Revoke a token; servers refuse it within a few seconds."""
    with store_of(ctx) as store:
        try:
            token = store.tokens.revoke(token_id)
        except UnknownToken as exc:
            raise fail(str(exc)) from None
        record(store, cli_actor(), "token.revoked", f"token:{token.id}", name=token.name)
    err.print(f"token #{token.id} {token.name!r} revoked")
