"""Bank persistence: banks, their entries (with tombstones) and the history of imports."""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from hashguard.domain.banks import (
    BANK_NAME_PATTERN,
    DEFAULT_PDQ_THRESHOLD,
    Bank,
    BankEntry,
    BankKind,
    BankStats,
    EntryChanges,
    ImportReport,
    IndexRows,
    RowError,
    SignalState,
)
from hashguard.domain.policy import Action, BankPolicy, InvalidPolicy
from hashguard.domain.signals import Algorithm
from hashguard.domain.video import VpdqFrame, parse_vpdq_features, vpdq_feature_str
from hashguard.store._util import aware, chunked, now
from hashguard.store.schema import bank_entries, bank_imports, bank_state, banks


class UnknownBank(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no bank named {name!r}")
        self.name = name


class InvalidBankName(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name!r} is not a bank name: up to 100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


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
        policy=BankPolicy(
            auto_max_distance=row.auto_max_distance,
            review_max_distance=row.review_max_distance,
            exact_action=Action(row.exact_action),
            shadow=row.shadow,
        ),
        vpdq_query_percent=float(row.vpdq_query_percent),
        vpdq_compared_percent=float(row.vpdq_compared_percent),
    )


def _percent(value: float | None) -> float | None:
    """A vPDQ threshold as given, or ``InvalidPolicy`` when it is no percentage."""
    if value is not None and not 0 <= value <= 100:
        raise InvalidPolicy(f"{value!r} is not a percentage from 0 to 100")
    return value


class _Keep:
    """``configure``'s "leave as it is" for settings where ``None`` is a value."""

    def __repr__(self) -> str:
        return "KEEP"


#: Leave a nullable policy setting unchanged (``None`` clears it).
KEEP: Any = _Keep()


def _policy_values(policy: BankPolicy) -> dict[str, Any]:
    return {
        "auto_max_distance": policy.auto_max_distance,
        "review_max_distance": policy.review_max_distance,
        "exact_action": str(policy.exact_action),
        "shadow": policy.shadow,
    }


#: the entry-id prefix of entries added as one HMA content item (``add_content``)
HMA_CONTENT = "hma:"
#: content added here whose row id an imported HMA content id (an HMA database's int4
#: serial, below this) already uses in the bank is numbered above all of them
HMA_IMPORTED_IDS = 2**31


def _next_seq(conn: Connection) -> int:
    """Take the next change number. The row lock it holds until commit orders concurrent
    bank changes, so a reader never sees number n+1 committed before n."""
    return int(
        conn.execute(
            update(bank_state)
            .where(bank_state.c.id == 1)
            .values(change_seq=bank_state.c.change_seq + 1)
            .returning(bank_state.c.change_seq)
        ).scalar_one()
    )


def _index_rows(rows: Sequence[Any]) -> IndexRows:
    return IndexRows(
        ids=[row.id for row in rows],
        bank_ids=[row.bank_id for row in rows],
        algorithms=[Algorithm(row.algorithm) for row in rows],
        values=[row.value for row in rows],
    )


_INDEX_COLUMNS = (
    bank_entries.c.id,
    bank_entries.c.bank_id,
    bank_entries.c.algorithm,
    bank_entries.c.value,
)


#: the metadata key under which a vPDQ entry's frames are kept, in python-threatexchange's
#: serialisation (``hash,quality,timestamp`` strings); a list's own key of that name yields
VPDQ_META = "vpdq"


def _entry_attrs(entry: BankEntry) -> dict[str, Any]:
    meta = dict(entry.metadata)
    if entry.frames:
        meta[VPDQ_META] = [vpdq_feature_str(f) for f in entry.frames]
    return {
        "entry_id": entry.entry_id,
        "category": entry.category,
        "meta": meta or None,
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
        policy: BankPolicy | None = None,
    ) -> Bank:
        """A new, empty bank; ``policy`` defaults to ``BankPolicy()``."""
        if not re.fullmatch(BANK_NAME_PATTERN, name):
            raise InvalidBankName(name)
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
                        **_policy_values(policy or BankPolicy()),
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
        auto_max_distance: int | None = KEEP,
        review_max_distance: int | None = KEEP,
        exact_action: Action | None = None,
        shadow: bool | None = None,
        vpdq_query_percent: float | None = None,
        vpdq_compared_percent: float | None = None,
    ) -> Bank:
        """Change the settings given; ``None`` leaves a setting as it is, except for the
        two distances, where ``None`` is a value (no PDQ auto band; review up to the
        threshold) and ``KEEP`` (the default) leaves them. An inconsistent policy raises
        ``InvalidPolicy`` and changes nothing."""
        changes: dict[str, Any] = {
            key: value
            for key, value in {
                "enabled": enabled,
                "pdq_threshold": pdq_threshold,
                "kind": str(kind) if kind is not None else None,
                "source": source,
                "licence": licence,
                "vpdq_query_percent": _percent(vpdq_query_percent),
                "vpdq_compared_percent": _percent(vpdq_compared_percent),
            }.items()
            if value is not None
        }
        policy_changes: dict[str, Any] = {
            key: value
            for key, value in {
                "auto_max_distance": auto_max_distance,
                "review_max_distance": review_max_distance,
                "exact_action": exact_action,
                "shadow": shadow,
            }.items()
            if value is not KEEP and (value is not None or key.endswith("distance"))
        }
        if changes or policy_changes:
            with self._engine.begin() as conn:
                row = conn.execute(
                    select(banks).where(banks.c.name == name).with_for_update()
                ).first()
                if row is None:
                    raise UnknownBank(name)
                if policy_changes:  # checked as a whole: raises InvalidPolicy
                    policy = replace(_bank(row).policy, **policy_changes)
                    changes |= _policy_values(policy)
                conn.execute(update(banks).where(banks.c.id == row.id).values(**changes))
        elif self.find(name) is None:
            raise UnknownBank(name)
        return self.get(name)

    def delete(self, name: str) -> None:
        with self._engine.begin() as conn:
            bank_id = conn.execute(select(banks.c.id).where(banks.c.name == name)).scalar()
            if bank_id is None:
                raise UnknownBank(name)
            # Delete children explicitly: SQLite only cascades with foreign_keys=ON.
            _next_seq(conn)
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

    def signal_state(self, algorithm: Algorithm, applied_seq: int) -> SignalState:
        """``algorithm``'s live entries in every bank, and what of them a match index that
        has applied the changes up to ``applied_seq`` holds (HMA's index build status)."""
        of = bank_entries.c.algorithm == str(algorithm)
        live = of & bank_entries.c.removed_at.is_(None)
        with self._engine.connect() as conn:
            count, newest = conn.execute(
                select(func.count(), func.max(bank_entries.c.added_at)).where(live)
            ).one()
            applied = conn.execute(
                select(func.max(bank_entries.c.added_at)).where(
                    live, bank_entries.c.change_seq <= applied_seq
                )
            ).scalar()
            pending = conn.execute(
                select(bank_entries.c.id)
                .where(of, bank_entries.c.change_seq > applied_seq)
                .limit(1)
            ).first()
        return SignalState(
            live=int(count),
            newest=aware(newest),
            newest_applied=aware(applied),
            pending=pending is not None,
        )

    def store_id(self) -> str:
        """This database's identity, so a saved index is never applied to another store."""
        with self._engine.connect() as conn:
            return str(conn.execute(select(bank_state.c.store_id)).scalar_one())

    def change_seq(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(select(bank_state.c.change_seq)).scalar_one())

    def index_rows(self, batch: int = 200_000) -> Iterator[IndexRows]:
        """Every live entry of every bank, in id order and in batches: the match indexes'
        input (read ``change_seq()`` first, then catch up with ``changes_since``)."""
        query = (
            select(*_INDEX_COLUMNS)
            .where(bank_entries.c.removed_at.is_(None))
            .order_by(bank_entries.c.id)
            .execution_options(yield_per=batch)
        )
        with self._engine.connect() as conn:
            for rows in conn.execute(query).partitions():
                yield _index_rows(rows)

    def changes_since(self, seq: int) -> EntryChanges:
        """Entries added, changed, restored or removed by transactions after ``seq``."""
        with self._engine.connect() as conn:
            current = int(conn.execute(select(bank_state.c.change_seq)).scalar_one())
            rows = list(
                conn.execute(
                    select(*_INDEX_COLUMNS, bank_entries.c.removed_at)
                    .where(bank_entries.c.change_seq > seq)
                    .order_by(bank_entries.c.id)
                )
            )
        return EntryChanges(
            seq=current,
            live=_index_rows([row for row in rows if row.removed_at is None]),
            removed=[row.id for row in rows if row.removed_at is not None],
        )

    def entry_seqs(self, ids: Iterable[int]) -> dict[int, int]:
        """The change sequence of entries by row id (when each was last added or changed)."""
        wanted = sorted(set(ids))
        found: dict[int, int] = {}
        with self._engine.connect() as conn:
            for chunk in chunked(wanted):
                query = select(bank_entries.c.id, bank_entries.c.change_seq).where(
                    bank_entries.c.id.in_(chunk)
                )
                found.update((int(i), int(s)) for i, s in conn.execute(query))
        return found

    def vpdq_frames(self, ids: Iterable[int]) -> dict[int, tuple[VpdqFrame, ...]]:
        """The frames of ``vpdq`` entries by row id (the vPDQ index's input; rows that are
        not vPDQ entries are left out)."""
        wanted = sorted(set(ids))
        found: dict[int, tuple[VpdqFrame, ...]] = {}
        with self._engine.connect() as conn:
            for chunk in chunked(wanted):
                query = select(bank_entries.c.id, bank_entries.c.meta).where(
                    bank_entries.c.id.in_(chunk),
                    bank_entries.c.algorithm == str(Algorithm.VPDQ),
                )
                for row_id, meta in conn.execute(query):
                    found[int(row_id)] = parse_vpdq_features((meta or {}).get(VPDQ_META) or [])
        return found

    def describe(self, ids: Iterable[int]) -> dict[int, tuple[str | None, str | None]]:
        """The list's own entry id and category of matched rows, by row id."""
        wanted = sorted(set(ids))
        found: dict[int, tuple[str | None, str | None]] = {}
        with self._engine.connect() as conn:
            for chunk in chunked(wanted):
                query = select(
                    bank_entries.c.id, bank_entries.c.entry_id, bank_entries.c.category
                ).where(bank_entries.c.id.in_(chunk))
                for row_id, entry_id, category in conn.execute(query):
                    found[row_id] = (entry_id, category)
        return found

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
            bank_id = self._bank_id(conn, name)
            if version is None:
                previous = conn.execute(
                    select(func.count()).where(bank_imports.c.bank_id == bank_id)
                ).scalar_one()
                version = str(previous + 1)
            counts = _upsert(conn, bank_id, entries, stamp=stamp, version=version, exclusive=True)
            report = ImportReport(
                bank=name,
                version=version,
                rows=rows,
                added=counts.added,
                updated=counts.updated,
                unchanged=counts.unchanged,
                removed=counts.removed,
                restored=counts.restored,
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
                    unchanged=report.unchanged,
                    removed=report.removed,
                    restored=report.restored,
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

    def add_entries(self, name: str, entries: Iterable[BankEntry]) -> EntryCounts:
        """Add or update entries without touching the bank's other entries (an exchange
        delta, an API call); a tombstoned entry that is added again is restored."""
        with self._engine.begin() as conn:
            bank_id = self._bank_id(conn, name)
            return _upsert(conn, bank_id, entries, stamp=now(), version=None, exclusive=False)

    def remove_entries(self, name: str, signals: Iterable[tuple[Algorithm, str]]) -> int:
        """Tombstone the live entries with these (algorithm, value) signals; returns how many."""
        wanted = {(str(algorithm), value) for algorithm, value in signals}
        if not wanted:
            return 0
        with self._engine.begin() as conn:
            bank_id = self._bank_id(conn, name)
            ids = [
                row.id
                for chunk in chunked(sorted({value for _, value in wanted}))
                for row in conn.execute(
                    select(bank_entries.c.id, bank_entries.c.algorithm, bank_entries.c.value).where(
                        bank_entries.c.bank_id == bank_id,
                        bank_entries.c.removed_at.is_(None),
                        bank_entries.c.value.in_(chunk),
                    )
                )
                if (row.algorithm, row.value) in wanted
            ]
            _tombstone(conn, ids)
        return len(ids)

    def remove_entries_by_id(self, name: str, entry_ids: Iterable[str]) -> int:
        """Tombstone the live entries with these entry ids (an exchange's deletions that
        name only the entry); returns how many."""
        wanted = sorted(set(entry_ids))
        if not wanted:
            return 0
        with self._engine.begin() as conn:
            bank_id = self._bank_id(conn, name)
            ids = [
                row.id
                for chunk in chunked(wanted)
                for row in conn.execute(
                    select(bank_entries.c.id).where(
                        bank_entries.c.bank_id == bank_id,
                        bank_entries.c.removed_at.is_(None),
                        bank_entries.c.entry_id.in_(chunk),
                    )
                )
            ]
            _tombstone(conn, ids)
        return len(ids)

    def add_content(self, name: str, entries: Sequence[BankEntry]) -> tuple[int, EntryCounts]:
        """Add one piece of content's signals (an HMA client's upload or hashes) as one
        content item: every entry gets the entry id ``hma:<n>``, ``n`` the row id of its
        first signal (``HMA_IMPORTED_IDS`` above it if an imported HMA content of the bank
        has that id), in one transaction; returns ``n`` (HMA's integer content id)."""
        if not entries:
            raise ValueError("content has at least one signal")
        with self._engine.begin() as conn:
            bank_id = self._bank_id(conn, name)
            counts = _upsert(conn, bank_id, entries, stamp=now(), version=None, exclusive=False)
            wanted = {(str(e.algorithm), e.value) for e in entries}
            ids = [
                row.id
                for row in conn.execute(
                    select(bank_entries.c.id, bank_entries.c.algorithm, bank_entries.c.value)
                    .where(
                        bank_entries.c.bank_id == bank_id,
                        bank_entries.c.value.in_(sorted({v for _, v in wanted})),
                    )
                    .order_by(bank_entries.c.id)
                )
                if (row.algorithm, row.value) in wanted
            ]
            content = ids[0]
            taken = conn.execute(
                select(bank_entries.c.id).where(
                    bank_entries.c.bank_id == bank_id,
                    bank_entries.c.entry_id == f"{HMA_CONTENT}{content}",
                    bank_entries.c.id.not_in(ids),
                )
            ).first()
            if taken is not None:  # an id kept from an HMA database (import-hma)
                content += HMA_IMPORTED_IDS
            conn.execute(
                update(bank_entries)
                .where(bank_entries.c.id.in_(ids))
                .values(entry_id=f"{HMA_CONTENT}{content}")
            )
        return content, counts

    def content_algorithms(self, name: str, content: int) -> builtins.list[Algorithm]:
        """The algorithms of HMA content item ``content``'s live entries (as
        ``remove_content`` finds them), never their values; empty if it has none."""
        with self._engine.connect() as conn:
            bank_id = self._bank_id(conn, name)
            rows = conn.execute(
                select(bank_entries.c.algorithm)
                .where(bank_entries.c.bank_id == bank_id, _content(content))
                .order_by(bank_entries.c.id)
            )
            return [Algorithm(row.algorithm) for row in rows]

    def remove_content(self, name: str, content: int) -> int:
        """Tombstone the live entries of HMA content item ``content``: those added as that
        content (entry id ``hma:<content>``), or else the one entry of another origin with
        that row id; returns how many."""
        with self._engine.begin() as conn:
            bank_id = self._bank_id(conn, name)
            ids = [
                row.id
                for row in conn.execute(
                    select(bank_entries.c.id).where(
                        bank_entries.c.bank_id == bank_id, _content(content)
                    )
                )
            ]
            _tombstone(conn, ids)
        return len(ids)

    @staticmethod
    def _bank_id(conn: Connection, name: str) -> int:
        bank_id = conn.execute(select(banks.c.id).where(banks.c.name == name)).scalar()
        if bank_id is None:
            raise UnknownBank(name)
        return int(bank_id)


@dataclass(frozen=True, kw_only=True, slots=True)
class EntryCounts:
    added: int
    updated: int
    unchanged: int
    removed: int
    restored: int


def _content(content: int) -> ColumnElement[bool]:
    """The live entries of HMA content item ``content``: those added as that content
    (entry id ``hma:<content>``), or else the one entry of another origin with that row
    id."""
    return bank_entries.c.removed_at.is_(None) & (
        (bank_entries.c.entry_id == f"{HMA_CONTENT}{content}")
        | (
            (bank_entries.c.id == content)
            & (
                bank_entries.c.entry_id.is_(None)
                | bank_entries.c.entry_id.not_like(f"{HMA_CONTENT}%")
            )
        )
    )


def _tombstone(conn: Connection, ids: Sequence[int]) -> None:
    if ids:
        seq = _next_seq(conn)
        for chunk in chunked(ids):
            conn.execute(
                update(bank_entries)
                .where(bank_entries.c.id.in_(chunk))
                .values(removed_at=now(), change_seq=seq)
            )


def _upsert(
    conn: Connection,
    bank_id: int,
    entries: Iterable[BankEntry],
    *,
    stamp: datetime,
    version: str | None,
    exclusive: bool,
) -> EntryCounts:
    """Write ``entries`` into the bank; with ``exclusive``, tombstone every other live entry.

    A signal given twice is written once (the last one wins). Only an exclusive write
    (a whole list version) reads the bank's every entry; a delta reads the ones it names.
    """
    wanted = {(str(entry.algorithm), entry.value): entry for entry in entries}
    query = select(
        bank_entries.c.id,
        bank_entries.c.algorithm,
        bank_entries.c.value,
        bank_entries.c.entry_id,
        bank_entries.c.category,
        bank_entries.c.meta,
        bank_entries.c.removed_at,
    ).where(bank_entries.c.bank_id == bank_id)
    if exclusive:
        rows = list(conn.execute(query))
    else:
        values = sorted({value for _, value in wanted})
        rows = [
            row
            for chunk in chunked(values)
            for row in conn.execute(query.where(bank_entries.c.value.in_(chunk)))
        ]
    existing: dict[tuple[str, str], Any] = {(row.algorithm, row.value): row for row in rows}
    to_add: list[dict[str, Any]] = []
    to_update: list[dict[str, Any]] = []
    restored = unchanged = 0
    for key, entry in wanted.items():
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
            to_update.append({"b_id": row.id, "removed_at": None, "removed_version": None, **attrs})
        elif (row.entry_id, row.category, row.meta) != tuple(attrs.values()):
            to_update.append({"b_id": row.id, "removed_at": None, "removed_version": None, **attrs})
        else:
            unchanged += 1
    to_remove = (
        [row.id for key, row in existing.items() if row.removed_at is None and key not in wanted]
        if exclusive
        else []
    )
    seq = _next_seq(conn) if to_add or to_update or to_remove else 0
    for item in to_add:
        item["change_seq"] = seq
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
                change_seq=seq,
            )
        )
        for batch in chunked(to_update):
            conn.execute(statement, list(batch))
    for ids in chunked(to_remove):
        conn.execute(
            update(bank_entries)
            .where(bank_entries.c.id.in_(ids))
            .values(removed_at=stamp, removed_version=version, change_seq=seq)
        )
    return EntryCounts(
        added=len(to_add),
        updated=len(to_update) - restored,
        unchanged=unchanged,
        removed=len(to_remove),
        restored=restored,
    )
