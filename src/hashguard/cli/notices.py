"""``hashguard notices``: DSA Art. 16 notices — the queue (configured notifiers first), one
notice whole, and resolving them now through the platform's callback and the pipeline."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from hashguard.audit import cli_actor
from hashguard.cli.context import err, fail, master_key_of, out, registry_of, settings_of, store_of
from hashguard.domain.notices import Notice, NoticeState, notice_json
from hashguard.notices.resolve import NotConfigured
from hashguard.notices.service import configured_resolver
from hashguard.store.notices import NoticeBusy, UnknownNotice

app = typer.Typer(
    help="DSA Art. 16 notices: the queue, one notice, resolving them now.",
    no_args_is_help=True,
)

JSON_OPTION = typer.Option("--json", help="JSON output.")
#: ``--state open``: every notice the resolver still has work on
OPEN = "open"
STATES = [OPEN, *(str(s) for s in NoticeState)]


def _states(state: str | None) -> list[NoticeState] | None:
    if state is None:
        return None
    if state == OPEN:
        return [s for s in NoticeState if s.open]
    if state not in STATES:
        raise fail(f"--state is one of {', '.join(STATES)}")
    return [NoticeState(state)]


def _table(notices: list[Notice]) -> Table:
    table = Table("id", "state", "category", "notifier", "reference", "items", "cases", "received")
    for notice in notices:
        notifier = notice.notifier
        who = f"{notifier.kind}" + (f": {notifier.name}" if notifier.name else "")
        table.add_row(
            str(notice.id),
            str(notice.state),
            str(notice.category),
            who + (" *" if notifier.configured else ""),
            notifier.reference or "-",
            str(len(notice.items)),
            ", ".join(str(c) for c in notice.case_ids) or "-",
            f"{notice.received_at:%Y-%m-%d %H:%M}",
        )
    return table


@app.command("list")
def list_notices(
    ctx: typer.Context,
    state: Annotated[
        str | None, typer.Option(help=f"Only notices in this state ({', '.join(STATES)}).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 1000,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Notices in queue order: configured notifiers' (marked *) first, then oldest first."""
    with store_of(ctx) as store:
        found = store.notices.list(states=_states(state), limit=limit)
    if as_json:
        out.print(json.dumps([notice_json(n) for n in found]), markup=False)
        return
    out.print(_table(found))


@app.command("show")
def show(
    ctx: typer.Context,
    notice_id: Annotated[int, typer.Argument(help="The notice's id.")],
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """One notice: who sent it, what it names, and what resolving each item found."""
    with store_of(ctx) as store:
        try:
            notice = store.notices.get(notice_id)
        except UnknownNotice as exc:
            raise fail(str(exc)) from None
    shown = notice_json(notice)
    if as_json:
        out.print(json.dumps(shown), markup=False)
        return
    for name in ("id", "state", "category", "channel", "priority", "received_at", "attempts"):
        out.print(f"{name}: {shown[name]}", markup=False)
    for name in ("next_attempt_at", "last_error", "resolved_at"):
        if shown[name] is not None:
            out.print(f"{name}: {shown[name]}", markup=False)
    out.print(f"notifier: {json.dumps(shown['notifier'])}", markup=False)
    out.print(f"explanation: {notice.explanation}", markup=False)
    for index, item in enumerate(notice.items):
        what = item.url or f"content id {item.content_id}"
        case = f" case #{item.case_id}" if item.case_id else ""
        why = f" ({item.reason})" if item.reason else ""
        out.print(f"item {index}: {what}: {item.state}{case}{why}", markup=False)


@app.command("resolve")
def resolve(
    ctx: typer.Context,
    notice_id: Annotated[
        int | None, typer.Argument(help="Only this notice (a failed one: now, not after its wait).")
    ] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Resolve due notices now (the ``notices`` background job does this every
    notices_run_minutes): each item through the platform's callback and the pipeline."""
    settings = settings_of(ctx)
    with store_of(ctx) as store:
        try:
            with configured_resolver(
                settings,
                store,
                registry_of(ctx),
                lambda: master_key_of(ctx),
                actor=cli_actor(),
                clock=lambda: datetime.now(UTC),
            ) as resolver:
                done = (
                    [resolver.resolve(notice_id)]
                    if notice_id is not None
                    else resolver.resolve_due()
                )
        except (NotConfigured, UnknownNotice, NoticeBusy) as exc:
            raise fail(str(exc)) from None
    if as_json:
        out.print(json.dumps([notice_json(n) for n in done]), markup=False)
        return
    if not done:
        err.print("no notice is due", markup=False)
        return
    out.print(_table(done))
