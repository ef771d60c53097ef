"""Importing a list file into a bank: all-or-nothing unless the operator skips invalid rows."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from hashguard.banks.formats import ListFormat, detect_format, parse_list
from hashguard.domain.banks import DEFAULT_PDQ_THRESHOLD, BankKind, ImportReport
from hashguard.domain.signals import Algorithm
from hashguard.store.banks import BankStore, UnknownBank


@dataclass(frozen=True, kw_only=True, slots=True)
class NewBank:
    """Settings for a bank that an import creates when it does not exist yet."""

    kind: BankKind = BankKind.KNOWN
    pdq_threshold: int = DEFAULT_PDQ_THRESHOLD


def import_list(
    store: BankStore,
    bank: str,
    path: Path,
    *,
    list_format: ListFormat | None = None,
    algorithm: Algorithm | None = None,
    version: str | None = None,
    source: str | None = None,
    licence: str | None = None,
    skip_invalid: bool = False,
    create: NewBank | None = None,
) -> ImportReport:
    """Replace ``bank``'s entries with the rows of ``path`` (a new version of the list).

    With any invalid row and without ``skip_invalid``, nothing is imported (and no
    bank is created) and the report, with ``applied=False``, names every bad row.
    A missing bank is created only when ``create`` is given.
    """
    exists = store.find(bank) is not None
    if not exists and create is None:
        raise UnknownBank(bank)
    parsed = parse_list(path, list_format or detect_format(path), algorithm=algorithm)
    errors = tuple(parsed.errors)
    if errors and not skip_invalid:
        return ImportReport(
            bank=bank,
            version=version,
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
    if not exists and create is not None:
        store.create(
            bank,
            kind=create.kind,
            pdq_threshold=create.pdq_threshold,
            source=source,
            licence=licence,
        )
    report = store.replace_entries(
        bank,
        parsed.entries.values(),
        version=version,
        filename=path.name,
        rows=parsed.rows,
        errors=errors,
        source=source,
        licence=licence,
    )
    return replace(report, duplicates=parsed.duplicates)
