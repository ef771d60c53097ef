"""Importing a list file into a bank: all-or-nothing unless the operator skips invalid rows."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from hashguard.banks.columns import ColumnMap
from hashguard.banks.formats import ListFormat, detect_format, parse_stream
from hashguard.domain.banks import DEFAULT_PDQ_THRESHOLD, BankKind, ImportReport
from hashguard.domain.signals import Algorithm
from hashguard.store.banks import BankStore, UnknownBank


@dataclass(frozen=True, kw_only=True, slots=True)
class NewBank:
    """Settings for a bank that an import creates when it does not exist yet."""

    kind: BankKind = BankKind.KNOWN
    pdq_threshold: int = DEFAULT_PDQ_THRESHOLD


@dataclass(frozen=True, kw_only=True, slots=True)
class ImportOptions:
    algorithm: Algorithm | None = None
    version: str | None = None
    source: str | None = None
    licence: str | None = None
    skip_invalid: bool = False
    create: NewBank | None = None
    #: an import without a single valid entry removes every entry of the bank: only
    #: when the operator says so (a truncated or wrong file must not empty a bank)
    allow_empty: bool = False
    #: which column fills which field (columns.column_map), instead of header names
    columns: ColumnMap | None = None
    #: columns that fill no field are kept as metadata unless this is set
    drop_unmapped: bool = False


class EmptyList(ValueError):
    def __init__(self, bank: str, name: str) -> None:
        super().__init__(
            f"{name} has no valid entries: importing it would remove every entry of bank "
            f"{bank!r}; allow an empty list explicitly if that is meant"
        )


def import_list(
    store: BankStore,
    bank: str,
    path: Path,
    *,
    list_format: ListFormat | None = None,
    options: ImportOptions = ImportOptions(),
) -> ImportReport:
    """Import the list file at ``path`` (format from its extension unless given)."""
    with path.open("rb") as raw:
        return import_stream(
            store, bank, raw, path.name, list_format or detect_format(path), options=options
        )


def import_stream(
    store: BankStore,
    bank: str,
    raw: BinaryIO,
    name: str,
    list_format: ListFormat,
    *,
    options: ImportOptions = ImportOptions(),
) -> ImportReport:
    """Replace ``bank``'s entries with the rows of the list (a new version of the list).

    With any invalid row and without ``skip_invalid``, nothing is imported (and no
    bank is created) and the report, with ``applied=False``, names every bad row.
    A missing bank is created only when ``options.create`` is given. A column mapping
    that does not fit the file raises ``ColumnMappingError``, ``skip_invalid`` or not,
    before anything is written.
    """
    exists = store.find(bank) is not None
    if not exists and options.create is None:
        raise UnknownBank(bank)
    parsed = parse_stream(
        raw,
        name,
        list_format,
        algorithm=options.algorithm,
        columns=options.columns,
        drop_unmapped=options.drop_unmapped,
    )
    errors = tuple(parsed.errors)
    if errors and not options.skip_invalid:
        return ImportReport(
            bank=bank,
            version=options.version,
            rows=parsed.rows,
            added=0,
            updated=0,
            unchanged=0,
            removed=0,
            restored=0,
            errors=errors,
            applied=False,
            duplicates=parsed.duplicates,
        )
    if not parsed.entries and exists and not options.allow_empty and store.stats(bank).active:
        raise EmptyList(bank, name)
    if not exists and options.create is not None:
        store.create(
            bank,
            kind=options.create.kind,
            pdq_threshold=options.create.pdq_threshold,
            source=options.source,
            licence=options.licence,
        )
    report = store.replace_entries(
        bank,
        parsed.entries.values(),
        version=options.version,
        filename=name,
        rows=parsed.rows,
        errors=errors,
        source=options.source,
        licence=options.licence,
    )
    return replace(report, duplicates=parsed.duplicates)
