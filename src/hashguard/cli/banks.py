"""``hashguard banks``: create, import, inspect and configure hash banks.

No command here ever prints or exports a bank's hashes: lists are confidential under
their licences. ``show`` gives counts, provenance and settings only.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from hashguard.audit import cli_actor
from hashguard.banks.columns import ColumnMappingError, Preset
from hashguard.banks.formats import ListFormat
from hashguard.banks.importer import NewBank
from hashguard.cli.context import err, fail, out, store_of
from hashguard.domain.banks import (
    DEFAULT_PDQ_THRESHOLD,
    MAX_PDQ_THRESHOLD,
    BankKind,
    bank_stats_to_json,
)
from hashguard.domain.flood import (
    DEFAULT_FLOOD_MAX_ITEMS,
    FloodFlag,
    FloodLimit,
    InvalidFloodLimit,
)
from hashguard.domain.policy import Action, InvalidPolicy
from hashguard.domain.signals import Algorithm
from hashguard.domain.text import printable
from hashguard.services import banks as service
from hashguard.store.banks import KEEP, BankExists, InvalidBankName, UnknownBank
from hashguard.store.flood import FlagNotActive, UnknownFlag


class ExactAction(StrEnum):
    ACT = "act"
    REVIEW = "review"


app = typer.Typer(help="Hash banks: named, versioned lists with provenance.", no_args_is_help=True)

Threshold = Annotated[
    int,
    typer.Option(
        "--threshold",
        min=0,
        max=MAX_PDQ_THRESHOLD,
        help="Largest PDQ Hamming distance that counts as a match for this bank.",
    ),
]


def _distance(value: str | None) -> int | None:
    """A policy distance from the command line: a number, or ``none``."""
    if value is None or value.lower() == "none":
        return None
    try:
        distance = int(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a number or 'none'") from None
    if not 0 <= distance <= MAX_PDQ_THRESHOLD:
        raise typer.BadParameter(f"must be between 0 and {MAX_PDQ_THRESHOLD}, or 'none'")
    return distance


@app.command()
def create(
    ctx: typer.Context,
    name: str,
    kind: Annotated[
        BankKind, typer.Option(help="known: content to find; allow: vetted false positives.")
    ] = BankKind.KNOWN,
    threshold: Threshold = DEFAULT_PDQ_THRESHOLD,
    source: Annotated[str | None, typer.Option(help="Where the list comes from.")] = None,
    licence: Annotated[str | None, typer.Option(help="Terms the list is held under.")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it switched off.")] = False,
) -> None:
    """Create an empty bank."""
    with store_of(ctx) as store:
        try:
            service.create_bank(
                store,
                cli_actor(),
                name,
                kind=kind,
                pdq_threshold=threshold,
                enabled=not disabled,
                source=source,
                licence=licence,
            )
        except (BankExists, InvalidBankName) as exc:
            raise fail(str(exc)) from None
    err.print(f"created bank {name!r} ({kind})")


@app.command("import")
def import_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Bank to import into; created if missing.")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    list_format: Annotated[
        ListFormat | None, typer.Option("--format", help="List format; guessed from the extension.")
    ] = None,
    algorithm: Annotated[
        Algorithm | None,
        typer.Option(
            help="Algorithm of rows that name none (plain files of 64-hex hashes need it)."
        ),
    ] = None,
    source: Annotated[str | None, typer.Option(help="Where the list comes from.")] = None,
    licence: Annotated[str | None, typer.Option(help="Terms the list is held under.")] = None,
    version: Annotated[
        str | None,
        typer.Option("--list-version", help="The list's version; default: import number."),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the valid rows even if some are invalid.")
    ] = False,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty", help="Accept a list without valid entries (it empties the bank)."
        ),
    ] = False,
    kind: Annotated[
        BankKind, typer.Option(help="Kind of a bank this import creates.")
    ] = BankKind.KNOWN,
    threshold: Threshold = DEFAULT_PDQ_THRESHOLD,
    columns: Annotated[
        str | None,
        typer.Option(
            help="Which column fills which field, instead of header names: "
            "field=COLUMN,... with fields algorithm, hash, entry_id, category, metadata, "
            "or md5/sha1/sha256/pdq for a column of that algorithm's hashes "
            "(see docs/list-formats.md).",
        ),
    ] = None,
    preset: Annotated[
        Preset | None, typer.Option(help="The column mapping of a known export format.")
    ] = None,
    no_header: Annotated[
        bool,
        typer.Option(
            "--no-header", help="The CSV/TSV file has no header row: --columns gives positions."
        ),
    ] = False,
    drop_unmapped: Annotated[
        bool,
        typer.Option("--drop-unmapped", help="Do not keep columns that fill no field as metadata."),
    ] = False,
) -> None:
    """Import a list file as the bank's new version.

    Entries missing from the new version are tombstoned; nothing at all is imported
    when any row is invalid, unless --skip-invalid, and a list without a valid entry
    is refused unless --allow-empty. A column mapping that does not fit the file is
    one error, and nothing is imported.
    """
    asked = service.ImportRequest(
        list_format=list_format,
        algorithm=algorithm,
        version=version,
        source=source,
        licence=licence,
        skip_invalid=skip_invalid,
        allow_empty=allow_empty,
        create=NewBank(kind=kind, pdq_threshold=threshold),
        columns=columns,
        preset=preset,
        header=not no_header,
        drop_unmapped=drop_unmapped,
    )
    try:
        asked.options()  # a mapping that is not one fails before the store is opened
    except ColumnMappingError as exc:
        raise fail(escape(str(exc))) from None
    with store_of(ctx) as store:
        try:
            report = service.import_file(store, cli_actor(), name, file, asked)
        except ValueError as exc:  # header names and file text in messages are not markup
            raise fail(escape(printable(str(exc)))) from None
    for error in report.errors:
        err.print(f"[yellow]invalid[/yellow] {escape(printable(str(error)))}", highlight=False)
    if not report.applied:
        raise fail(
            f"{len(report.errors)} invalid row(s) in {escape(file.name)}; nothing imported "
            "(fix them, or pass --skip-invalid to import the valid rows)",
            code=1,
        )
    err.print(
        f"bank {report.bank!r} version {report.version}: {report.rows} rows, "
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.removed} removed, {report.restored} restored, "
        f"{report.duplicates} duplicate, {len(report.errors)} invalid skipped"
    )


@app.command("list")
def list_banks(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """List banks with their settings and live entry counts."""
    with store_of(ctx) as store:
        stats = [store.banks.stats(bank.name) for bank in store.banks.list()]
    if as_json:
        out.print(
            json.dumps([bank_stats_to_json(s) for s in stats]),
            markup=False,
        )
        return
    table = Table("bank", "kind", "enabled", "threshold", "entries", "version", "source")
    for s in stats:
        table.add_row(
            s.bank.name,
            str(s.bank.kind),
            "yes" if s.bank.enabled else "no",
            str(s.bank.pdq_threshold),
            str(s.total_active),
            s.bank.version or "",
            s.bank.source or "",
        )
    out.print(table)


@app.command()
def show(
    ctx: typer.Context,
    name: str,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Counts, provenance and settings of one bank (never its hashes)."""
    with store_of(ctx) as store:
        try:
            stats = store.banks.stats(name)
        except UnknownBank as exc:
            raise fail(str(exc)) from None
        flood_limit, flooded = store.flood.limit(name), store.flood.paused(bank=name)
    shown = {
        **bank_stats_to_json(stats),
        "flood_guard": flood_limit.describe(),
        # entries the flood guard paused: by entry id and flag, never by hash
        "flooded_entries": [
            {"flag": f.id, "entry": _entry(f), "state": str(f.state), "since": str(f.flagged_at)}
            for f in flooded
        ],
    }
    if as_json:
        out.print(json.dumps(shown), markup=False)
        return
    shown["policy"] = stats.bank.policy.describe()
    for key, value in shown.items():
        out.print(f"{key:>16}: {value}", markup=False)


@app.command("set")
def set_settings(
    ctx: typer.Context,
    name: str,
    enabled: Annotated[
        bool | None, typer.Option("--enabled/--disabled", help="Switch matching on or off.")
    ] = None,
    threshold: Annotated[
        int | None,
        typer.Option("--threshold", min=0, max=MAX_PDQ_THRESHOLD, help="PDQ distance threshold."),
    ] = None,
    kind: Annotated[BankKind | None, typer.Option(help="known or allow.")] = None,
    auto_max_distance: Annotated[
        str | None,
        typer.Option(
            "--auto-max-distance",
            metavar="N|none",
            help="Policy band A: PDQ matches up to this distance act automatically "
            "('none': PDQ never acts on its own).",
        ),
    ] = None,
    review_max_distance: Annotated[
        str | None,
        typer.Option(
            "--review-max-distance",
            metavar="N|none",
            help="Policy band B: PDQ matches up to this distance go to human review; "
            "farther ones are ignored ('none': up to the threshold).",
        ),
    ] = None,
    exact_action: Annotated[
        ExactAction | None,
        typer.Option("--exact-action", help="What an exact-hash match leads to."),
    ] = None,
    shadow: Annotated[
        bool | None,
        typer.Option(
            "--shadow/--live",
            help="Shadow mode: record and count the bank's decisions, act on none of them.",
        ),
    ] = None,
    vpdq_query_percent: Annotated[
        float | None,
        typer.Option(
            "--vpdq-query-percent",
            help="vPDQ: share of a video's frames that must match a listed video (default 80).",
        ),
    ] = None,
    vpdq_compared_percent: Annotated[
        float | None,
        typer.Option(
            "--vpdq-compared-percent",
            help="vPDQ: share of the listed video's frames that must be matched (default 0).",
        ),
    ] = None,
) -> None:
    """Change a bank's settings and policy."""
    changes = service.BankChanges(
        enabled=enabled,
        pdq_threshold=threshold,
        kind=kind,
        auto_max_distance=KEEP if auto_max_distance is None else _distance(auto_max_distance),
        review_max_distance=KEEP if review_max_distance is None else _distance(review_max_distance),
        exact_action=Action(exact_action) if exact_action is not None else None,
        shadow=shadow,
        vpdq_query_percent=vpdq_query_percent,
        vpdq_compared_percent=vpdq_compared_percent,
    )
    with store_of(ctx) as store:
        try:
            bank = service.configure_bank(store, cli_actor(), name, changes)
        except (UnknownBank, InvalidPolicy) as exc:
            raise fail(str(exc)) from None
    err.print(
        f"bank {bank.name!r}: {bank.kind}, {'enabled' if bank.enabled else 'disabled'}, "
        f"threshold {bank.pdq_threshold}; policy {bank.policy.describe()}"
    )


@app.command()
def delete(
    ctx: typer.Context,
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a bank and all its entries."""
    if not yes:
        typer.confirm(f"Delete bank {name!r} and all its entries?", abort=True, err=True)
    with store_of(ctx) as store:
        try:
            service.delete_bank(store, cli_actor(), name)
        except UnknownBank as exc:
            raise fail(str(exc)) from None
    err.print(f"deleted bank {name!r}")


# -- the flood guard -------------------------------------------------------------------

flood_app = typer.Typer(
    help="The flood guard: list entries paused because they matched too many distinct "
    "items; release or tombstone them, set a bank's limit.",
    no_args_is_help=True,
)
app.add_typer(flood_app, name="flood")

_UNITS = {"s": 1, "min": 60, "m": 60, "h": 3600, "d": 86400}


def _window(value: str) -> timedelta:
    """``90min``, ``24h``, ``7d`` or seconds."""
    match = re.fullmatch(r"\s*(\d{1,9})\s*(s|min|m|h|d)?\s*", value)
    if match is None:
        raise typer.BadParameter(f"{value!r} is not a window: e.g. 90min, 24h, 7d")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2] or "s"])


def _entry(flag: FloodFlag) -> str:
    return flag.entry_id or f"#{flag.entry_ref}"


def _flag_json(flag: FloodFlag) -> dict[str, object]:
    return {
        "flag": flag.id,
        "bank": flag.bank,
        "entry_ref": flag.entry_ref,
        "entry_id": flag.entry_id,
        "category": flag.category,
        "state": str(flag.state),
        "pauses": flag.pauses,
        "flagged_at": flag.flagged_at.isoformat(),
        "distinct_items": flag.distinct_items,
        "max_items": flag.limit.max_items,
        "window_seconds": int(flag.limit.window.total_seconds()),
        "paused_matches": flag.paused_matches,
        "last_paused_at": flag.last_paused_at.isoformat() if flag.last_paused_at else None,
        "resolved_at": flag.resolved_at.isoformat() if flag.resolved_at else None,
        "resolved_by": flag.resolved_by,
    }


@flood_app.command("list")
def flood_list(
    ctx: typer.Context,
    bank: Annotated[str | None, typer.Option(help="Only this bank's entries.")] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Every flag ever raised, not only the pausing ones.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Entries the flood guard paused (never their hashes), and the guard's counts."""
    with store_of(ctx) as store:
        flags = store.flood.history(bank=bank) if everything else store.flood.paused(bank=bank)
        counts = store.flood.counts(bank=bank)
    if as_json:
        out.print(
            json.dumps({"flags": [_flag_json(f) for f in flags], "counts": asdict(counts)}),
            markup=False,
        )
        return
    table = Table("flag", "bank", "entry", "state", "distinct", "limit", "paused", "since")
    for flag in flags:
        table.add_row(
            str(flag.id),
            flag.bank,
            _entry(flag),
            str(flag.state),
            str(flag.distinct_items),
            flag.limit.short(),
            str(flag.paused_matches),
            flag.flagged_at.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)
    err.print(
        f"{counts.paused_now} entr{'y' if counts.paused_now == 1 else 'ies'} paused now; "
        f"{counts.flagged} flagged, {counts.released} released, {counts.tombstoned} "
        f"tombstoned, {counts.paused_matches} matched item(s) sent to review instead of acted on",
        highlight=False,
    )


def _resolve(ctx: typer.Context, flag_id: int, *, tombstone: bool) -> FloodFlag:
    with store_of(ctx) as store:
        try:
            if tombstone:
                return store.flood.tombstone(flag_id, actor=cli_actor())
            return store.flood.release(flag_id, actor=cli_actor())
        except (UnknownFlag, FlagNotActive) as exc:
            raise fail(str(exc)) from None


@flood_app.command("release")
def flood_release(
    ctx: typer.Context,
    flag_id: Annotated[int, typer.Argument(min=1, help="The flag (see `banks flood list`).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Let a paused entry act automatically again; its counter restarts (audited)."""
    if not yes:
        typer.confirm(f"Let flag {flag_id}'s entry act automatically again?", abort=True, err=True)
    flag = _resolve(ctx, flag_id, tombstone=False)
    err.print(f"released entry {_entry(flag)} of bank {flag.bank!r}: it acts again")


@flood_app.command("tombstone")
def flood_tombstone(
    ctx: typer.Context,
    flag_id: Annotated[int, typer.Argument(min=1, help="The flag (see `banks flood list`).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a paused entry from its bank; it stays paused should an import bring it
    back (audited)."""
    if not yes:
        typer.confirm(f"Remove flag {flag_id}'s entry from its bank?", abort=True, err=True)
    flag = _resolve(ctx, flag_id, tombstone=True)
    err.print(f"tombstoned entry {_entry(flag)} of bank {flag.bank!r}")


@flood_app.command("set")
def flood_set(
    ctx: typer.Context,
    bank: str,
    max_items: Annotated[
        str,
        typer.Option(
            "--max-items",
            metavar="N|off",
            help="Pause an entry once it matched more than N distinct items in the window "
            f"(default {DEFAULT_FLOOD_MAX_ITEMS}; 'off': never).",
        ),
    ] = str(DEFAULT_FLOOD_MAX_ITEMS),
    window: Annotated[
        str,
        typer.Option(
            "--window", help="The window, e.g. 90min, 24h, 7d (default 24h).", metavar="SPAN"
        ),
    ] = "24h",
) -> None:
    """Set a bank's flood limit (audited)."""
    if max_items.lower() == "off":
        items = None
    elif max_items.isdigit():
        items = int(max_items)
    else:
        raise typer.BadParameter(f"{max_items!r} is not a number or 'off'")
    with store_of(ctx) as store:
        try:
            limit = store.flood.set_limit(
                bank, FloodLimit(max_items=items, window=_window(window)), actor=cli_actor()
            )
        except (UnknownBank, InvalidFloodLimit) as exc:
            raise fail(str(exc)) from None
    err.print(f"bank {bank!r}: flood guard {limit.describe()}")
