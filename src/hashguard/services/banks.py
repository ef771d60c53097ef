"""Bank changes and their audit entries: create, configure, delete, import, edit entries.

Each change commits with its audit entry in one transaction (``Store.atomic``), except
an import: it lands in batches as a new version of the bank and is recorded once
applied (``bank.imported``)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from hashguard.audit import import_details, record
from hashguard.banks.columns import Preset, column_map
from hashguard.banks.formats import ListFormat
from hashguard.banks.importer import ImportOptions, NewBank, import_list, import_stream
from hashguard.domain.audit import AuditAction
from hashguard.domain.banks import (
    DEFAULT_PDQ_THRESHOLD,
    Bank,
    BankEntry,
    BankKind,
    ImportReport,
    bank_to_json,
)
from hashguard.domain.policy import Action, BankPolicy
from hashguard.domain.signals import Algorithm
from hashguard.store import Store
from hashguard.store.banks import KEEP, EntryCounts


def subject(name: str) -> str:
    """A bank as the audit log names it."""
    return f"bank:{name}"


def create_bank(
    store: Store,
    actor: str,
    name: str,
    *,
    kind: BankKind = BankKind.KNOWN,
    enabled: bool = True,
    pdq_threshold: int = DEFAULT_PDQ_THRESHOLD,
    source: str | None = None,
    licence: str | None = None,
    policy: BankPolicy | None = None,
    exchange: str | None = None,
) -> Bank:
    """A new, empty bank (``bank.created``; ``exchange`` names the exchange it is made
    for). Raises ``BankExists``, ``InvalidBankName``, ``InvalidPolicy``."""
    made_for = {"exchange": exchange} if exchange is not None else {}
    with store.atomic() as unit:
        bank = unit.banks.create(
            name,
            kind=kind,
            enabled=enabled,
            pdq_threshold=pdq_threshold,
            source=source,
            licence=licence,
            policy=policy,
        )
        record(unit, actor, AuditAction.BANK_CREATED, subject(name), kind=str(kind), **made_for)
    return bank


@dataclass(frozen=True, kw_only=True, slots=True)
class BankChanges:
    """Settings to change: ``None`` leaves a setting as it is, except the two distances,
    where ``None`` is a value (no automatic PDQ band; review up to the threshold) and
    ``KEEP`` (their default) leaves them."""

    enabled: bool | None = None
    pdq_threshold: int | None = None
    kind: BankKind | None = None
    source: str | None = None
    licence: str | None = None
    auto_max_distance: int | None = KEEP
    review_max_distance: int | None = KEEP
    exact_action: Action | None = None
    shadow: bool | None = None
    vpdq_query_percent: float | None = None
    vpdq_compared_percent: float | None = None


def configure_bank(store: Store, actor: str, name: str, changes: BankChanges) -> Bank:
    """Change a bank's settings and policy (``bank.configured`` with the settings after).
    Raises ``UnknownBank``, ``InvalidPolicy`` (nothing changes)."""
    with store.atomic() as unit:
        bank = unit.banks.configure(
            name, **{field.name: getattr(changes, field.name) for field in fields(changes)}
        )
        record(unit, actor, AuditAction.BANK_CONFIGURED, subject(name), **bank_to_json(bank))
    return bank


def delete_bank(store: Store, actor: str, name: str) -> None:
    """Delete a bank and its entries (``bank.deleted``). Raises ``UnknownBank``."""
    with store.atomic() as unit:
        unit.banks.delete(name)
        record(unit, actor, AuditAction.BANK_DELETED, subject(name))


@dataclass(frozen=True, kw_only=True, slots=True)
class ImportRequest:
    """A list import as an operator asks for it (``hashguard banks import``'s options,
    the import API's query): the list's format (``None``: from the file's extension),
    its provenance, how strict to be, the bank to create if missing, and the column
    mapping (``banks.columns.column_map``)."""

    list_format: ListFormat | None = None
    algorithm: Algorithm | None = None
    version: str | None = None
    source: str | None = None
    licence: str | None = None
    skip_invalid: bool = False
    allow_empty: bool = False
    create: NewBank | None = None
    columns: str | None = None
    preset: Preset | None = None
    header: bool = True
    drop_unmapped: bool = False

    def options(self) -> ImportOptions:
        """The importer's options; a column mapping that is not one raises
        ``ColumnMappingError``."""
        return ImportOptions(
            algorithm=self.algorithm,
            version=self.version,
            source=self.source,
            licence=self.licence,
            skip_invalid=self.skip_invalid,
            allow_empty=self.allow_empty,
            create=self.create,
            columns=column_map(self.columns, preset=self.preset, header=self.header),
            drop_unmapped=self.drop_unmapped,
        )


def import_file(
    store: Store, actor: str, name: str, path: Path, asked: ImportRequest
) -> ImportReport:
    """Import the list file at ``path`` as the bank's new version (``bank.imported`` when
    applied). Raises what the importer raises (``ValueError`` subclasses)."""
    report = import_list(
        store.banks, name, path, list_format=asked.list_format, options=asked.options()
    )
    return _imported(store, actor, name, report)


def import_upload(
    store: Store, actor: str, name: str, data: bytes, filename: str, asked: ImportRequest
) -> ImportReport:
    """``import_file`` for a list that arrived as bytes (``asked.list_format`` given)."""
    if asked.list_format is None:
        raise ValueError("an uploaded list names its format")
    report = import_stream(
        store.banks,
        name,
        io.BytesIO(data),
        filename,
        asked.list_format,
        options=asked.options(),
    )
    return _imported(store, actor, name, report)


def _imported(store: Store, actor: str, name: str, report: ImportReport) -> ImportReport:
    if report.applied:
        record(store, actor, AuditAction.BANK_IMPORTED, subject(name), **import_details(report))
    return report


def add_entries(store: Store, actor: str, name: str, entries: Sequence[BankEntry]) -> EntryCounts:
    """Add or update entries, the bank's others untouched (``bank.entries_added``)."""
    with store.atomic() as unit:
        counts = unit.banks.add_entries(name, entries)
        record(unit, actor, AuditAction.BANK_ENTRIES_ADDED, subject(name), count=len(entries))
    return counts


def remove_entries(
    store: Store, actor: str, name: str, signals: Iterable[tuple[Algorithm, str]]
) -> int:
    """Tombstone entries (``bank.entries_removed`` with how many were live)."""
    with store.atomic() as unit:
        removed = unit.banks.remove_entries(name, signals)
        record(unit, actor, AuditAction.BANK_ENTRIES_REMOVED, subject(name), count=removed)
    return removed


def add_content(
    store: Store, actor: str, name: str, entries: Sequence[BankEntry]
) -> tuple[int, EntryCounts]:
    """Add one content item's signals (an HMA client's ``/c/bank/{name}/content`` or
    ``/signal``), numbered as HMA numbers content (``bank.entries_added``)."""
    with store.atomic() as unit:
        content, counts = unit.banks.add_content(name, entries)
        record(
            unit,
            actor,
            AuditAction.BANK_ENTRIES_ADDED,
            subject(name),
            count=len(entries),
            content=content,
        )
    return content, counts


def remove_content(store: Store, actor: str, name: str, content: int) -> int:
    """Tombstone one HMA content item's entries (``bank.entries_removed``)."""
    with store.atomic() as unit:
        removed = unit.banks.remove_content(name, content)
        record(
            unit,
            actor,
            AuditAction.BANK_ENTRIES_REMOVED,
            subject(name),
            count=removed,
            content=content,
        )
    return removed
