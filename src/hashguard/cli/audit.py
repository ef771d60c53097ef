"""``hashguard audit``: verify the hash-chained audit log, show its head, list entries."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from hashguard.audit import event_json, parse_head, timestamp, verify
from hashguard.cli.context import err, fail, out, store_of
from hashguard.store.audit import AuditHeadMissing

app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


@app.command("verify")
def verify_log(
    ctx: typer.Context,
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            help="SEQ:HASH from an earlier `audit head`, kept outside the database: "
            "proves nothing up to it was removed or rewritten.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Check every entry's hash and link, and the log's end against the store's head
    (and --expect-head). Exit status 0 when intact, 1 naming the first broken entry."""
    try:
        expected = parse_head(expect_head) if expect_head is not None else None
    except ValueError as exc:
        raise fail(str(exc)) from None
    with store_of(ctx) as store:
        try:
            recorded = store.audit.head()
        except AuditHeadMissing as exc:
            raise fail(str(exc), code=1) from None
        report = verify(store.audit.events(), recorded_head=recorded, expected_head=expected)
    if as_json:
        out.print(
            json.dumps(
                {
                    "ok": report.ok,
                    "checked": report.checked,
                    "head": str(report.head),
                    "broken_seq": report.broken_seq,
                    "problem": str(report.problem) if report.problem else None,
                    "message": report.message,
                }
            ),
            markup=False,
        )
    if report.ok:
        err.print(f"audit log intact: {report.checked} entries, head {report.head}", soft_wrap=True)
        return
    where = f"entry {report.broken_seq}" if report.broken_seq is not None else "the log"
    err.print(
        f"[red]audit log broken at {where} ({report.problem}):[/red] {report.message}",
        highlight=False,
    )
    raise typer.Exit(1)


@app.command()
def head(ctx: typer.Context) -> None:
    """Print the head as SEQ:HASH. Keep it outside the database (a ticket, a WORM
    bucket) and pass it to `audit verify --expect-head` later."""
    with store_of(ctx) as store:
        try:
            current = store.audit.head()
        except AuditHeadMissing as exc:
            raise fail(str(exc), code=1) from None
    out.print(str(current), markup=False)


@app.command("list")
def list_events(
    ctx: typer.Context,
    since: Annotated[int, typer.Option("--since", help="Only entries after this seq.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Entries in order, oldest first."""
    with store_of(ctx) as store:
        if as_json:
            for event in store.audit.events(after_seq=since):
                out.print(json.dumps(event_json(event), ensure_ascii=False), markup=False)
            return
        table = Table("seq", "at (UTC)")
        for name in ("actor", "action", "subject"):
            table.add_column(name, no_wrap=True)
        table.add_column("details")
        for event in store.audit.events(after_seq=since):
            table.add_row(
                str(event.seq),
                timestamp(event.at)[:19].replace("T", " "),
                event.actor,
                event.action,
                event.subject or "",
                json.dumps(dict(event.details), sort_keys=True, ensure_ascii=False),
            )
    out.print(table, markup=False)
