"""``hashguard actions``: run the dispatcher, list the outbox and its dead letters, retry,
restore a quarantined file."""

from __future__ import annotations

import json
import signal
import threading
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from hashguard.actions.dispatcher import dispatcher_from_settings
from hashguard.actions.quarantine import QuarantineError, restore
from hashguard.audit import cli_actor
from hashguard.cli.context import err, fail, out, registry_of, settings_of, store_of
from hashguard.domain.actions import ActionState, OutboxAction, QuarantineRecord
from hashguard.jobs.builtin import existing_master_key
from hashguard.store.actions import NotDead, NotQuarantined, UnknownAction
from hashguard.store.objquarantine import audit_details

app = typer.Typer(
    help="Actions on decisions: webhooks, quarantine, the outbox and its dead letters.",
    no_args_is_help=True,
)

JSON_OPTION = typer.Option("--json", help="JSON output.")


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def action_json(action: OutboxAction) -> dict[str, Any]:
    """An outbox entry for people and scripts (its payload is left out: the list shows
    what happened, ``show`` is not needed to operate the outbox)."""
    return {
        "id": action.id,
        "kind": str(action.kind),
        "event": str(action.event) if action.event else None,
        "target": action.target,
        "idempotency_key": action.idempotency_key,
        "subject": action.subject,
        "state": str(action.state),
        "attempts": action.attempts,
        "next_attempt_at": _stamp(action.next_attempt_at),
        "created_at": _stamp(action.created_at),
        "delivered_at": _stamp(action.delivered_at),
        "dead_at": _stamp(action.dead_at),
        "last_error": action.last_error,
    }


def record_json(record: QuarantineRecord) -> dict[str, Any]:
    return {
        "action_id": record.action_id,
        "state": str(record.state),
        "original_path": record.original_path,
        "quarantine_path": record.quarantine_path,
        "sha256": record.sha256,
        "size": record.size,
        "mode": oct(record.mode),
        "uid": record.uid,
        "gid": record.gid,
        "quarantined_at": _stamp(record.quarantined_at),
        "restored_at": _stamp(record.restored_at),
        "restored_by": record.restored_by,
    }


def _show(actions: list[OutboxAction], as_json: bool, title: str) -> None:
    if as_json:
        for action in actions:
            out.print(json.dumps(action_json(action)), markup=False)
        return
    table = Table(title=title)
    for column in ("id", "kind", "event", "target", "state", "attempts", "last error"):
        table.add_column(column)
    for a in actions:
        table.add_row(
            str(a.id),
            str(a.kind),
            str(a.event or ""),
            a.target or "",
            str(a.state),
            str(a.attempts),
            a.last_error or "",
        )
    err.print(table)


@app.command("dispatch")
def dispatch(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Deliver what is due now, then exit.")
    ] = False,
) -> None:
    """Deliver outbox entries: webhooks, quarantine and feedback to the exchanges, with
    retries and backoff. Runs until SIGTERM or Ctrl-C unless --once."""
    settings = settings_of(ctx)
    with store_of(ctx) as store:
        dispatcher, webhooks = dispatcher_from_settings(
            settings, store, registry_of(ctx), key=lambda: existing_master_key(settings)
        )
        try:
            if once:
                report = dispatcher.run_once()
                out.print(
                    json.dumps(
                        {
                            "delivered": len(report.delivered),
                            "retried": len(report.retried),
                            "dead": len(report.dead),
                            "lost": len(report.lost),
                        }
                    ),
                    markup=False,
                )
                return
            stop = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            err.print(f"dispatching as {dispatcher.owner}", highlight=False)
            dispatcher.run_forever(stop, poll_seconds=settings.actions_poll_seconds)
        finally:
            webhooks.close()


@app.command("list")
def list_actions(
    ctx: typer.Context,
    state: Annotated[ActionState | None, typer.Option("--state", help="Only this state.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 100,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Outbox entries, newest first, and how many there are in each state."""
    with store_of(ctx) as store:
        actions = store.actions.list(state=state, limit=limit)
        counts = store.actions.counts()
    _show(actions, as_json, "outbox")
    err.print(", ".join(f"{s}: {n}" for s, n in counts.items()), highlight=False)


@app.command("dead")
def dead(ctx: typer.Context, as_json: Annotated[bool, JSON_OPTION] = False) -> None:
    """The dead letters: actions that failed for longer than the retry horizon, or in a
    way retrying cannot fix. `actions retry ID` puts one back."""
    with store_of(ctx) as store:
        actions = store.actions.dead_letters()
    _show(actions, as_json, "dead letters")
    if not as_json:
        err.print(f"{len(actions)} dead letters", highlight=False)


@app.command("retry")
def retry(ctx: typer.Context, action_id: Annotated[int, typer.Argument(help="Its id.")]) -> None:
    """Put a dead letter back in the queue, due now (recorded in the audit log)."""
    with store_of(ctx) as store:
        try:
            action = store.actions.retry(action_id, actor=cli_actor())
        except (UnknownAction, NotDead) as exc:
            raise fail(str(exc)) from None
    err.print(f"action {action.id} is pending again", highlight=False)


@app.command("quarantined")
def quarantined(ctx: typer.Context, as_json: Annotated[bool, JSON_OPTION] = False) -> None:
    """Files and objects moved into quarantine, where from and where to."""
    with store_of(ctx) as store:
        records = store.actions.quarantine_records()
        objects = store.actions.object_quarantines()
    for record in records:
        if as_json:
            out.print(json.dumps(record_json(record)), markup=False)
        else:
            err.print(
                f"{record.action_id}  {record.state}  {record.original_path}"
                f"  ->  {record.quarantine_path}",
                highlight=False,
                markup=False,
            )
    for held in objects:
        if as_json:
            shown = {"action_id": held.action_id, "state": str(held.state)}
            out.print(json.dumps(shown | audit_details(held)), markup=False)
        else:
            err.print(
                f"{held.action_id}  {held.state}  {held.uri}  ->  {held.quarantine_uri}"
                f"  ({held.lock}{': ' + held.lock_note if held.lock_note else ''})",
                highlight=False,
                markup=False,
            )


@app.command("restore")
def restore_file(
    ctx: typer.Context,
    action_id: Annotated[int, typer.Argument(help="The quarantine action's id.")],
) -> None:
    """Move a quarantined file back (after a false positive). Never overwrites a file
    that now exists at its original path."""
    with store_of(ctx) as store:
        try:
            record = restore(store.actions, action_id, actor=cli_actor())
        except (QuarantineError, NotQuarantined) as exc:
            raise fail(str(exc)) from None
    err.print(f"restored to {record.original_path}", highlight=False, markup=False)
