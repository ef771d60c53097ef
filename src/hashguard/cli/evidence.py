"""``hashguard evidence``: the evidence vault's items, legal holds, retention and export.

No command writes an item's bytes to a terminal: ``export`` writes them to a new file
(mode 0600), and only on an explicit request, recorded in the audit log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hashguard.audit import cli_actor
from hashguard.cli.context import err, fail, master_key_of, out, settings_of, store_of
from hashguard.domain.evidence import EvidenceItem, RetentionReport
from hashguard.evidence import (
    EvidenceError,
    Vault,
    blob_dir_of,
    count_orphans,
    open_vault,
    run_retention,
)
from hashguard.store import Store

app = typer.Typer(
    help="The evidence vault: encrypted matched content, retention and legal holds.",
    no_args_is_help=True,
)
retention_app = typer.Typer(help="The retention job.", no_args_is_help=True)
app.add_typer(retention_app, name="retention")

JSON_OPTION = typer.Option("--json", help="JSON output.")
ITEM = typer.Argument(help="The item's id.")


@contextmanager
def _vault(ctx: typer.Context) -> Iterator[Vault]:
    with _vault_and_store(ctx) as (vault, _store):
        yield vault


@contextmanager
def _vault_and_store(ctx: typer.Context) -> Iterator[tuple[Vault, Store]]:
    key = master_key_of(ctx)
    with store_of(ctx) as store:
        yield open_vault(settings_of(ctx), store, key), store


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def item_json(item: EvidenceItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "state": str(item.state),
        "created_at": _stamp(item.created_at),
        "retain_until": _stamp(item.retain_until),
        "jurisdiction": item.jurisdiction,
        "legal_hold": item.legal_hold,
        "hold_reason": item.hold_reason,
        "held_at": _stamp(item.held_at),
        "size": item.size,
        "sha256": item.sha256,
        "summary": dict(item.summary),
        "destroyed_at": _stamp(item.destroyed_at),
        "destroyed_by": item.destroyed_by,
        "destroy_reason": item.destroy_reason,
    }


def _report_json(report: RetentionReport) -> dict[str, Any]:
    return {
        "now": report.now.isoformat(),
        "dry_run": report.dry_run,
        "destroyed": list(report.destroyed),
        "held": list(report.held),
        "failed": [{"id": i, "error": e} for i, e in report.failed],
        "orphans_removed": report.orphans_removed,
        "orphan_items": list(report.orphan_items),
        "orphan_items_held": list(report.orphan_items_held),
    }


@app.command("list")
def list_items(
    ctx: typer.Context,
    include_destroyed: Annotated[
        bool, typer.Option("--all", help="Include destroyed items.")
    ] = False,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Kept items, metadata only."""
    with _vault(ctx) as vault:
        items = vault.list(include_destroyed=include_destroyed)
    if as_json:
        out.print(json.dumps([item_json(i) for i in items]), markup=False)
        return
    table = Table("state", "created (UTC)", "kept until", "jur.", "size", "banks")
    table.add_column("id", no_wrap=True)  # ids are copied into other commands whole
    for item in items:
        table.add_row(
            str(item.state),
            f"{item.created_at:%Y-%m-%d %H:%M}",
            f"{item.retain_until:%Y-%m-%d}",
            item.jurisdiction,
            str(item.size),
            " ".join(item.summary.get("banks", ())),
            item.id,
        )
    out.print(table)


@app.command()
def show(
    ctx: typer.Context,
    item_id: Annotated[str, ITEM],
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """One item's metadata (never its bytes or its encrypted context)."""
    with _vault(ctx) as vault:
        try:
            item = vault.item(item_id)
        except EvidenceError as exc:
            raise fail(str(exc)) from None
    shown = item_json(item)
    if as_json:
        out.print(json.dumps(shown), markup=False)
        return
    for name, value in shown.items():
        out.print(f"{name}: {value if value is not None else '-'}", markup=False)


@app.command()
def hold(
    ctx: typer.Context,
    item_id: Annotated[str, ITEM],
    reason: Annotated[str, typer.Option(help="Why, e.g. the request's reference.")],
) -> None:
    """Place a legal hold: the item is kept whatever its retention."""
    with _vault(ctx) as vault:
        try:
            item = vault.hold(item_id, reason, actor=cli_actor())
        except EvidenceError as exc:
            raise fail(str(exc)) from None
    err.print(f"evidence item {item.id} is under a legal hold", highlight=False)


@app.command()
def release(ctx: typer.Context, item_id: Annotated[str, ITEM]) -> None:
    """Lift a legal hold; the item is then kept until its retention ends."""
    with _vault(ctx) as vault:
        try:
            item = vault.release(item_id, actor=cli_actor())
        except EvidenceError as exc:
            raise fail(str(exc)) from None
    err.print(
        f"evidence item {item.id} released; kept until {item.retain_until:%Y-%m-%d} UTC",
        highlight=False,
    )


@app.command()
def delete(
    ctx: typer.Context,
    item_id: Annotated[str, ITEM],
    reason: Annotated[str, typer.Option(help="Why it is destroyed now.")],
) -> None:
    """Destroy an item whose retention ended (refused under a legal hold)."""
    with _vault(ctx) as vault:
        try:
            vault.delete(item_id, actor=cli_actor(), reason=reason)
        except EvidenceError as exc:
            raise fail(str(exc)) from None
    err.print(f"evidence item {item_id} destroyed (its data key is erased)", highlight=False)


@retention_app.command("run")
def retention_run(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be destroyed; change nothing.")
    ] = False,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Destroy every item whose retention ended and that is not under a legal hold, and
    the orphans a killed process left (items with no case and files with no item, older
    than an hour; never one under a legal hold)."""
    with _vault_and_store(ctx) as (vault, store):
        report = run_retention(vault, datetime.now(UTC), dry_run=dry_run, store=store.evidence)
    if as_json:
        out.print(json.dumps(_report_json(report)), markup=False)
    else:
        verb = "would destroy" if dry_run else "destroyed"
        removed = "would be removed" if dry_run else "removed"
        err.print(
            f"{verb} {len(report.destroyed)} item(s); {len(report.held)} expired item(s) "
            f"kept under a legal hold; {len(report.failed)} failed; orphans "
            f"{removed}: {len(report.orphan_items)} item(s) with no case, "
            f"{report.orphans_removed} file(s) with no item"
            + (
                f"; {len(report.orphan_items_held)} orphaned item(s) kept under a legal hold"
                if report.orphan_items_held
                else ""
            ),
            highlight=False,
        )
        for item_id, error in report.failed:
            err.print(f"  {item_id}: {error}", highlight=False)
    if report.failed:
        raise typer.Exit(1)


@app.command()
def orphans(ctx: typer.Context, as_json: Annotated[bool, JSON_OPTION] = False) -> None:
    """Count what a killed process left: items with no case and encrypted files with no
    item, older than an hour (``retention run`` removes them). Needs no master key."""
    settings = settings_of(ctx)
    with store_of(ctx) as store:
        found = count_orphans(store.evidence, blob_dir_of(settings), datetime.now(UTC))
    if as_json:
        shown = {"items": found.items, "held": found.held, "files": found.files}
        out.print(json.dumps(shown), markup=False)
        return
    err.print(
        f"{found.items} item(s) with no case, {found.files} file(s) with no item"
        + (f"; {found.held} orphaned item(s) under a legal hold (kept)" if found.held else ""),
        highlight=False,
    )


@app.command()
def export(
    ctx: typer.Context,
    item_id: Annotated[str, ITEM],
    to: Annotated[Path, typer.Option("--to", help="A new file for the original bytes.")],
    reason: Annotated[
        str, typer.Option(help="The law-enforcement request it answers (its reference).")
    ],
) -> None:
    """Decrypt an item to a new file, with its context beside it (FILE.context.json).

    Only to answer a law-enforcement request: the export is recorded in the audit log
    with your name and the reason. The file holds illegal material: hand it over through
    the agreed secure channel and delete it.
    """
    if str(to) == "-":
        raise fail("evidence is never written to standard output: name a file with --to")
    context_path = to.with_name(to.name + ".context.json")
    for path in (to, context_path):
        if path.exists():
            raise fail(f"{path} exists: export writes only new files")
    err.print(
        "[bold red]warning:[/bold red] this writes the original matched content, "
        "decrypted, to disk. Do it only for a law-enforcement request; the export is "
        "audited. Do not open the file.",
        highlight=False,
    )
    with _vault(ctx) as vault:
        try:
            data, context = vault.get(item_id, actor=cli_actor(), reason=reason)
        except EvidenceError as exc:
            raise fail(str(exc)) from None
    try:
        _write_new(to, data)
        _write_new(context_path, json.dumps(context, indent=2).encode())
    except OSError as exc:
        raise fail(f"cannot write the export: {exc}") from None
    err.print(
        f"evidence item {item_id} written to {to} ({len(data)} bytes) and its context to "
        f"{context_path}",
        highlight=False,
    )


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
