"""Bank persistence: banks, their entries (with tombstones) and the history of imports."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy import Engine, Row, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from hashguard.domain.banks import (
    DEFAULT_PDQ_THRESHOLD,
    Bank,
    BankEntry,
    BankKind,
    BankStats,
    ImportReport,
    RowError,
)
from hashguard.domain.signals import Algorithm
from hashguard.store._util import aware, chunked, now
from hashguard.store.schema import bank_entries, bank_imports, banks


class UnknownBank(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no bank named {name!r}")
        self.name = name


class BankExists(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a bank named {name!r} already exists")
        self.name = name


def _bank(row: Row[Any]) -> Bank:
    created = aware(row.created_at)
    assert created is not None
    return Bank(
        id=row.id,
        name=row.name,
        kind=BankKind(row.kind),
        enabled=row.enabled,
        pdq_threshold=row.pdq_threshold,
        source=row.source,
        licence=row.licence,
        version=row.version,
        created_at=created,
        imported_at=aware(row.imported_at),
    )


def _entry_attrs(entry: BankEntry) -> dict[str, Any]:
    return {
        "entry_id": entry.entry_id,
        "category": entry.category,
        "meta": dict(entry.metadata) or None,
    }


class BankStore:
    """Banks and their entries. Nothing here hands hashes to a caller except
    ``active_entries``, which only the matcher's index builder uses."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(
        self,
        name: str,
        *,
        kind: BankKind = BankKind.KNOWN,
        enabled: bool = True,
        pdq_threshold: int = DEFAULT_PDQ_THRESHOLD,
        source: str | None = None,
        licence: str | None = None,
    ) -> Bank:
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    insert(banks).values(
                        name=name,
                        kind=str(kind),
                        enabled=enabled,
                        pdq_threshold=pdq_threshold,
                        source=source,
                        licence=licence,
                        created_at=now(),
                    )
                )
        except IntegrityError as exc:
            raise BankExists(name) from exc
        return self.get(name)

    def get(self, name: str) -> Bank:
        with self._engine.connect() as conn:
            row = conn.execute(select(banks).where(banks.c.name == name)).first()
        if row is None:
            raise UnknownBank(name)
        return _bank(row)

    def find(self, name: str) -> Bank | None:
        try:
            return self.get(name)
        except UnknownBank:
            return None

    def list(self) -> list[Bank]:
        with self._engine.connect() as conn:
            return [_bank(row) for row in conn.execute(select(banks).order_by(banks.c.name))]

    def configure(
        self,
        name: str,
        *,
        enabled: bool | None = None,
        pdq_threshold: int | None = None,
        kind: BankKind | None = None,
        source: str | None = None,
        licence: str | None = None,
    ) -> Bank:
        changes: dict[str, Any] = {
            key: value
            for key, value in {
                "enabled": enabled,
                "pdq_threshold": pdq_threshold,
                "kind": str(kind) if kind is not None else None,
                "source": source,
                "licence": licence,
            }.items()
            if value is not None
        }
        if changes:
            with self._engine.begin() as conn:
                result = conn.execute(update(banks).where(banks.c.name == name).values(**changes))
            if result.rowcount == 0:
                raise UnknownBank(name)
        return self.get(name)

    def delete(self, name: str) -> None:
        with self._engine.begin() as conn:
            bank_id = conn.execute(select(banks.c.id).where(banks.c.name == name)).scalar()
            if bank_id is None:
                raise UnknownBank(name)
            # Delete children explicitly: SQLite only cascades with foreign_keys=ON.
            conn.execute(bank_entries.delete().where(bank_entries.c.bank_id == bank_id))
            conn.execute(bank_imports.delete().where(bank_imports.c.bank_id == bank_id))
            conn.execute(banks.delete().where(banks.c.id == bank_id))

    def stats(self, name: str) -> BankStats:
        bank = self.get(name)
        with self._engine.connect() as conn:
            active = {
                Algorithm(algorithm): count
                for algorithm, count in conn.execute(
                    select(bank_entries.c.algorithm, func.count())
                    .where(bank_entries.c.bank_id == bank.id, bank_entries.c.removed_at.is_(None))
                    .group_by(bank_entries.c.algorithm)
                )
            }
            removed = conn.execute(
                select(func.count()).where(
                    bank_entries.c.bank_id == bank.id, bank_entries.c.removed_at.is_not(None)
                )
            ).scalar_one()
            imports = conn.execute(
                select(func.count()).where(bank_imports.c.bank_id == bank.id)
            ).scalar_one()
        return BankStats(bank=bank, active=active, removed=removed, imports=imports)

    def active_entries(self, bank_id: int) -> Iterator[BankEntry]:
        """Every live entry of one bank, streamed; for building match indexes only."""
        query = (
            select(
                bank_entries.c.algorithm,
                bank_entries.c.value,
                bank_entries.c.entry_id,
                bank_entries.c.category,
            )
            .where(bank_entries.c.bank_id == bank_id, bank_entries.c.removed_at.is_(None))
            .execution_options(yield_per=50_000)
        )
        with self._engine.connect() as conn:
            for algorithm, value, entry_id, category in conn.execute(query):
                yield BankEntry(
                    algorithm=Algorithm(algorithm),
                    value=value,
                    entry_id=entry_id,
                    category=category,
                )

    def replace_entries(
        self,
        name: str,
        entries: Iterable[BankEntry],
        *,
        version: str | None,
        filename: str,
        rows: int,
        errors: tuple[RowError, ...] = (),
        source: str | None = None,
        licence: str | None = None,
    ) -> ImportReport:
        """Make the bank's live entries exactly ``entries``, in one transaction.

        New signals are added, changed ones updated, ones that were removed and came
        back restored, and live ones missing from ``entries`` tombstoned (kept with
        ``removed_at``/``removed_version``, so a removal is on record). ``version``
        defaults to the number of this import.
        """
        stamp = now()
        with self._engine.begin() as conn:
            bank_row = conn.execute(select(banks).where(banks.c.name == name)).first()
            if bank_row is None:
                raise UnknownBank(name)
            bank_id = bank_row.id
            if version is None:
                previous = conn.execute(
                    select(func.count()).where(bank_imports.c.bank_id == bank_id)
                ).scalar_one()
                version = str(previous + 1)
            existing: dict[tuple[str, str], Any] = {
                (row.algorithm, row.value): row
                for row in conn.execute(
                    select(
                        bank_entries.c.id,
                        bank_entries.c.algorithm,
                        bank_entries.c.value,
                        bank_entries.c.entry_id,
                        bank_entries.c.category,
                        bank_entries.c.meta,
                        bank_entries.c.removed_at,
                    ).where(bank_entries.c.bank_id == bank_id)
                )
            }
            to_add: list[dict[str, Any]] = []
            to_update: list[dict[str, Any]] = []
            restored = unchanged = 0
            seen: set[tuple[str, str]] = set()
            for entry in entries:
                key = (str(entry.algorithm), entry.value)
                seen.add(key)
                attrs = _entry_attrs(entry)
                row = existing.get(key)
                if row is None:
                    to_add.append(
                        {
                            "bank_id": bank_id,
                            "algorithm": key[0],
                            "value": key[1],
                            "added_at": stamp,
                            "added_version": version,
                            **attrs,
                        }
                    )
                elif row.removed_at is not None:
                    restored += 1
                    to_update.append(
                        {"b_id": row.id, "removed_at": None, "removed_version": None, **attrs}
                    )
                elif (row.entry_id, row.category, row.meta) != tuple(attrs.values()):
                    to_update.append(
                        {"b_id": row.id, "removed_at": None, "removed_version": None, **attrs}
                    )
                else:
                    unchanged += 1
            to_remove = [
                row.id
                for key, row in existing.items()
                if row.removed_at is None and key not in seen
            ]
            for batch in chunked(to_add):
                conn.execute(insert(bank_entries), list(batch))
            if to_update:
                statement = (
                    update(bank_entries)
                    .where(bank_entries.c.id == bindparam("b_id"))
                    .values(
                        entry_id=bindparam("entry_id"),
                        category=bindparam("category"),
                        meta=bindparam("meta"),
                        removed_at=bindparam("removed_at"),
                        removed_version=bindparam("removed_version"),
                    )
                )
                for batch in chunked(to_update):
                    conn.execute(statement, list(batch))
            for ids in chunked(to_remove):
                conn.execute(
                    update(bank_entries)
                    .where(bank_entries.c.id.in_(ids))
                    .values(removed_at=stamp, removed_version=version)
                )
            report = ImportReport(
                bank=name,
                version=version,
                rows=rows,
                added=len(to_add),
                updated=len(to_update) - restored,
                unchanged=unchanged,
                removed=len(to_remove),
                restored=restored,
                errors=errors,
                applied=True,
            )
            conn.execute(
                insert(bank_imports).values(
                    bank_id=bank_id,
                    version=version,
                    filename=filename,
                    imported_at=stamp,
                    rows=rows,
                    added=report.added,
                    updated=report.updated,
                    unchanged=unchanged,
                    removed=report.removed,
                    restored=restored,
                    invalid=len(errors),
                )
            )
            provenance: Mapping[str, Any] = {
                "version": version,
                "imported_at": stamp,
                **({"source": source} if source is not None else {}),
                **({"licence": licence} if licence is not None else {}),
            }
            conn.execute(update(banks).where(banks.c.id == bank_id).values(**provenance))
        return report
