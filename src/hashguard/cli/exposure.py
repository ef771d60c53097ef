"""``hashguard exposure``: extra reveals for a reviewer who reached the exposure limit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from hashguard.audit import cli_actor
from hashguard.cli.context import err, fail, settings_of, store_of
from hashguard.review.exposure import MAX_GRANT, RevealLimit, grant

app = typer.Typer(help="Reviewers' exposure limit.", no_args_is_help=True)


@app.command("grant")
def grant_reveals(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The reviewer (their login name).")],
    extra: Annotated[
        int, typer.Option(min=1, max=MAX_GRANT, help="How many reveals beyond the limit.")
    ],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")],
) -> None:
    """Let a reviewer reveal EXTRA more originals beyond review_reveal_limit, for one
    limit window from now. Audited (review.reveals_granted) with the reason."""
    settings = settings_of(ctx)
    limit = RevealLimit.of(settings)
    with store_of(ctx) as store:
        person = store.people.find_user(name)
        if person is None:
            raise fail(f"there is no person {name!r}")
        try:
            given = grant(
                store.exposure,
                user_id=person.id,
                extra=extra,
                reason=reason,
                actor=cli_actor(),
                now=datetime.now(UTC),
                limit=limit,
            )
        except ValueError as exc:
            raise fail(str(exc)) from None
    until = given.expires_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    err.print(f"{name} may reveal {extra} more originals until {until}", highlight=False)
    if not limit.limit:
        err.print("[yellow]note:[/yellow] there is no exposure limit (review_reveal_limit is 0)")
