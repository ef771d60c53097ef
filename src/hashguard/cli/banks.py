"""``hashguard banks``: create, import, inspect and configure hash banks.

No command here ever prints or exports a bank's hashes: lists are confidential under
their licences. ``show`` gives counts, provenance and settings only.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from hashguard.audit import bank_details, cli_actor, import_details, record
from hashguard.banks.columns import ColumnMappingError, Preset, column_map
from hashguard.banks.formats import ListFormat
from hashguard.banks.importer import ImportOptions, NewBank, import_list
from hashguard.cli.context import err, fail, out, store_of
from hashguard.domain.banks import DEFAULT_PDQ_THRESHOLD, MAX_PDQ_THRESHOLD, Bank, BankKind
from hashguard.domain.policy import Action, InvalidPolicy
from hashguard.domain.signals import Algorithm
from hashguard.domain.text import printable
from hashguard.store.banks import KEEP, BankExists, InvalidBankName, UnknownBank


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


def _bank_json(bank: Bank) -> dict[str, object]:
    return {
        "name": bank.name,
        "kind": str(bank.kind),
        "enabled": bank.enabled,
        "pdq_threshold": bank.pdq_threshold,
        "source": bank.source,
        "licence": bank.licence,
        "version": bank.version,
        "created_at": bank.created_at.isoformat(),
        "imported_at": bank.imported_at.isoformat() if bank.imported_at else None,
        "policy": {
            "auto_max_distance": bank.policy.auto_max_distance,
            "review_max_distance": bank.policy.review_max_distance,
            "exact_action": str(bank.policy.exact_action),
            "shadow": bank.policy.shadow,
        },
    }


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
            store.banks.create(
                name,
                kind=kind,
                pdq_threshold=threshold,
                enabled=not disabled,
                source=source,
                licence=licence,
            )
        except (BankExists, InvalidBankName) as exc:
            raise fail(str(exc)) from None
        record(store, cli_actor(), "bank.created", f"bank:{name}", kind=str(kind))
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
    try:
        mapping = column_map(columns, preset=preset, header=not no_header)
    except ColumnMappingError as exc:
        raise fail(escape(str(exc))) from None
    with store_of(ctx) as store:
        try:
            report = import_list(
                store.banks,
                name,
                file,
                list_format=list_format,
                options=ImportOptions(
                    algorithm=algorithm,
                    version=version,
                    source=source,
                    licence=licence,
                    skip_invalid=skip_invalid,
                    create=NewBank(kind=kind, pdq_threshold=threshold),
                    allow_empty=allow_empty,
                    columns=mapping,
                    drop_unmapped=drop_unmapped,
                ),
            )
        except ValueError as exc:  # header names and file text in messages are not markup
            raise fail(escape(printable(str(exc)))) from None
        if report.applied:
            record(store, cli_actor(), "bank.imported", f"bank:{name}", **import_details(report))
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
            json.dumps([{**_bank_json(s.bank), "entries": s.total_active} for s in stats]),
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
    shown = {
        **_bank_json(stats.bank),
        "entries": {str(algorithm): count for algorithm, count in sorted(stats.active.items())},
        "removed_entries": stats.removed,
        "imports": stats.imports,
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
) -> None:
    """Change a bank's settings and policy."""
    with store_of(ctx) as store:
        try:
            bank = store.banks.configure(
                name,
                enabled=enabled,
                pdq_threshold=threshold,
                kind=kind,
                auto_max_distance=KEEP
                if auto_max_distance is None
                else _distance(auto_max_distance),
                review_max_distance=KEEP
                if review_max_distance is None
                else _distance(review_max_distance),
                exact_action=Action(exact_action) if exact_action is not None else None,
                shadow=shadow,
            )
        except (UnknownBank, InvalidPolicy) as exc:
            raise fail(str(exc)) from None
        record(store, cli_actor(), "bank.configured", f"bank:{name}", **bank_details(bank))
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
            store.banks.delete(name)
        except UnknownBank as exc:
            raise fail(str(exc)) from None
        record(store, cli_actor(), "bank.deleted", f"bank:{name}")
    err.print(f"deleted bank {name!r}")
