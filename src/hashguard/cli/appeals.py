"""``hashguard appeals``: uploaders' appeals (DSA Art. 20) — list them, decide one
(uphold or reverse) as a named person, and retry putting back a reversal's files.

A decision is recorded under the person who runs the command (``cli:<login>``), or,
with ``--as NAME``, entered on a reviewer's behalf (``cli:<login>/as:NAME``): whoever
took part in the decision the appeal contests is refused, whichever way they come in.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from hashguard.actions.outbox import endpoints_of
from hashguard.audit import cli_actor
from hashguard.cli.cases import AS_OPTION, STALE_EXIT, _actor
from hashguard.cli.context import err, fail, out, settings_of, store_of
from hashguard.domain.appeals import AppealState, Outcome, Restoration, appeal_json
from hashguard.review import appeals as service
from hashguard.review.cases import ReviewError, StaleCase, UnknownCase

app = typer.Typer(help="Appeals (DSA Art. 20) against restrictions.", no_args_is_help=True)

APPEAL = typer.Argument(help="The appeal's id.")


@app.command("list")
def list_appeals(
    ctx: typer.Context,
    state: Annotated[AppealState | None, typer.Option(help="Only appeals in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Appeals, oldest first: ``--state open`` is the queue."""
    with store_of(ctx) as store:
        found = store.appeals.list(states=[state] if state else [], limit=limit)
    if as_json:
        out.print(json.dumps([appeal_json(a) for a in found]), markup=False)
        return
    table = Table("id", "case", "state", "received (UTC)", "statement", "decided by", "restoration")
    for appeal in found:
        table.add_row(
            str(appeal.id),
            str(appeal.case_id),
            str(appeal.state),
            appeal.received_at.strftime("%Y-%m-%d %H:%M"),
            appeal.statement_puid,
            appeal.decided_by or "-",
            str(appeal.restoration or "-"),
        )
    out.print(table)


@app.command()
def decide(
    ctx: typer.Context,
    appeal_id: Annotated[int, APPEAL],
    reason: Annotated[str, typer.Option("--reason", help="Why (required; told the uploader).")],
    uphold: Annotated[bool, typer.Option("--uphold", help="The restriction stands.")] = False,
    reverse: Annotated[
        bool,
        typer.Option(
            "--reverse",
            help="Lift the restriction: the case becomes a false positive, its files come "
            "back from quarantine and its hashes go to the allow bank.",
        ),
    ] = False,
    allow_bank: Annotated[
        str | None,
        typer.Option("--allow-bank", help="For --reverse (default: review_allow_bank)."),
    ] = None,
    as_user: Annotated[str | None, AS_OPTION] = None,
) -> None:
    """Decide an open appeal: --uphold or --reverse, by a person who did not take the
    decision it contests."""
    if uphold == reverse:
        raise fail("give one of --uphold and --reverse")
    outcome = Outcome.UPHOLD if uphold else Outcome.REVERSE
    actor = _actor(as_user)
    settings = settings_of(ctx)
    with store_of(ctx) as store:
        try:
            decided = service.decide(
                store,
                appeal_id,
                outcome,
                actor=actor,
                reason=reason,
                at=datetime.now(UTC),
                allow_bank=allow_bank or settings.review_allow_bank,
                endpoints=endpoints_of(settings),
            )
        except StaleCase as exc:
            raise fail(str(exc), STALE_EXIT) from None
        except (service.AppealError, service.UnknownAppeal, UnknownCase, ReviewError) as exc:
            raise fail(str(exc)) from None
    for line in decided.notes:
        err.print(line, highlight=False, markup=False)
    appeal = decided.appeal
    restoration = f" (restoration: {appeal.restoration})" if appeal.restoration else ""
    err.print(f"appeal {appeal.id} {appeal.state}{restoration}", highlight=False)


@app.command()
def restore(ctx: typer.Context, appeal_id: Annotated[int, APPEAL]) -> None:
    """Put back the quarantined files of a reversed appeal's case again (after a restore
    that failed, or one a stopped process left pending), and see whether its objects'
    queued restores were carried out; nothing is ever overwritten."""
    with store_of(ctx) as store:
        try:
            appeal, notes = service.restore_content(store, appeal_id, actor=cli_actor())
        except (service.AppealError, service.UnknownAppeal) as exc:
            raise fail(str(exc)) from None
    for line in notes:
        err.print(line, highlight=False, markup=False)
    err.print(f"appeal {appeal.id}: restoration {appeal.restoration}", highlight=False)
    if appeal.restoration is Restoration.FAILED:
        raise typer.Exit(1)
