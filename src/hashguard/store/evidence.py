"""Evidence persistence: item metadata, the sealed context and the wrapped data key.

The store never sees an item's bytes or a key in clear: the vault hands it sealed
values. Destroying an item erases both sealed values in the same conditional update
that checks the item is neither held nor within retention, so a hold placed a moment
earlier always wins.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Row, exists, insert, or_, select, update

from hashguard.domain.evidence import EvidenceItem
from hashguard.store._util import aware, chunked, stamp, utc
from hashguard.store.schema import cases, evidence_items


class UnknownEvidence(LookupError):
    def __init__(self, item_id: str) -> None:
        super().__init__(f"no evidence item {item_id!r}")
        self.item_id = item_id


def _item(row: Row[Any]) -> EvidenceItem:
    return EvidenceItem(
        id=row.id,
        created_at=stamp(row.created_at),
        retain_until=stamp(row.retain_until),
        jurisdiction=row.jurisdiction,
        legal_hold=bool(row.legal_hold),
        hold_reason=row.hold_reason,
        held_at=aware(row.held_at),
        size=row.size,
        sha256=row.sha256,
        summary=dict(row.summary),
        destroyed_at=aware(row.destroyed_at),
        destroyed_by=row.destroyed_by,
        destroy_reason=row.destroy_reason,
    )


_METADATA = tuple(c for c in evidence_items.c if c.name not in ("data_key", "context"))


def _caseless(created_before: datetime) -> tuple[ColumnElement[bool], ...]:
    """A live item older than ``created_before`` that no case holds: no case names it
    (``evidence_id``) or is about its content (``content_key``, its SHA-256: a later
    sighting of a case's content keeps its own item, which the case does not name)."""
    held_by_a_case = exists(
        select(cases.c.id).where(
            or_(
                cases.c.evidence_id == evidence_items.c.id,
                cases.c.content_key == evidence_items.c.sha256,
            )
        )
    )
    return (
        evidence_items.c.destroyed_at.is_(None),
        evidence_items.c.created_at < utc(created_before),
        ~held_by_a_case,
    )


def insert_item(conn: Connection, item: EvidenceItem, *, data_key: bytes, context: bytes) -> None:
    """Record an item inside the caller's transaction. ``data_key`` is wrapped by the
    master key and ``context`` sealed with the data key: neither is readable from the
    database alone."""
    conn.execute(
        insert(evidence_items).values(
            id=item.id,
            created_at=utc(item.created_at),
            retain_until=utc(item.retain_until),
            jurisdiction=item.jurisdiction,
            legal_hold=item.legal_hold,
            hold_reason=item.hold_reason,
            held_at=item.held_at,
            size=item.size,
            sha256=item.sha256,
            summary=dict(item.summary),
            data_key=data_key,
            context=context,
        )
    )


def preserve_items(
    conn: Connection, item_ids: Iterable[str], *, until: datetime, reason: str, at: datetime
) -> builtins.list[EvidenceItem]:
    """Inside the caller's transaction, keep each live item of ``item_ids`` at least until
    ``until`` (``retain_until`` never shortened) under a legal hold whose reason names
    ``reason`` (added to the reason of a hold already there, once). Idempotent; the
    items as they are now (destroyed ones left out)."""
    done: builtins.list[EvidenceItem] = []
    for item_id in sorted(set(item_ids)):
        row = conn.execute(
            select(*_METADATA)
            .where(evidence_items.c.id == item_id, evidence_items.c.destroyed_at.is_(None))
            .with_for_update()
        ).first()
        if row is None:
            continue
        held = bool(row.legal_hold)
        before = row.hold_reason if held and row.hold_reason else None
        if before is None:
            hold_reason = reason
        elif reason in before:
            hold_reason = before
        else:
            hold_reason = f"{before}; {reason}"
        conn.execute(
            update(evidence_items)
            .where(evidence_items.c.id == item_id)
            .values(
                retain_until=max(stamp(row.retain_until), utc(until)),
                legal_hold=True,
                hold_reason=hold_reason,
                held_at=row.held_at if held else utc(at),
            )
        )
        changed = conn.execute(select(*_METADATA).where(evidence_items.c.id == item_id)).one()
        done.append(_item(changed))
    return done


class EvidenceStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def insert(self, item: EvidenceItem, *, data_key: bytes, context: bytes) -> None:
        """``insert_item`` in a transaction of its own."""
        with self._engine.begin() as conn:
            insert_item(conn, item, data_key=data_key, context=context)

    def get(self, item_id: str) -> EvidenceItem:
        with self._engine.connect() as conn:
            row = conn.execute(select(*_METADATA).where(evidence_items.c.id == item_id)).first()
        if row is None:
            raise UnknownEvidence(item_id)
        return _item(row)

    def sealed(self, item_id: str) -> tuple[bytes | None, bytes | None]:
        """The wrapped data key and the sealed context (``None`` once destroyed)."""
        query = select(evidence_items.c.data_key, evidence_items.c.context).where(
            evidence_items.c.id == item_id
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise UnknownEvidence(item_id)
        return (
            None if row.data_key is None else bytes(row.data_key),
            None if row.context is None else bytes(row.context),
        )

    def list(self, *, include_destroyed: bool = False) -> builtins.list[EvidenceItem]:
        query = select(*_METADATA).order_by(evidence_items.c.created_at, evidence_items.c.id)
        if not include_destroyed:
            query = query.where(evidence_items.c.destroyed_at.is_(None))
        with self._engine.connect() as conn:
            return [_item(row) for row in conn.execute(query)]

    def expired(self, now: datetime) -> builtins.list[EvidenceItem]:
        """Live items whose retention has ended, held or not, oldest first."""
        query = (
            select(*_METADATA)
            .where(
                evidence_items.c.destroyed_at.is_(None),
                evidence_items.c.retain_until <= utc(now),
            )
            .order_by(evidence_items.c.retain_until, evidence_items.c.id)
        )
        with self._engine.connect() as conn:
            return [_item(row) for row in conn.execute(query)]

    def orphaned(self, created_before: datetime) -> builtins.list[EvidenceItem]:
        """Live items created before ``created_before`` that no case holds (left by a
        process killed between keeping the evidence and opening its case), held or
        not, oldest first."""
        query = (
            select(*_METADATA)
            .where(*_caseless(created_before))
            .order_by(evidence_items.c.created_at, evidence_items.c.id)
        )
        with self._engine.connect() as conn:
            return [_item(row) for row in conn.execute(query)]

    def destroy_orphan(
        self, item_id: str, *, created_before: datetime, at: datetime, actor: str, reason: str
    ) -> bool:
        """Erase an orphaned item's wrapped key and sealed context (crypto-erasure) if it
        is still orphaned (``orphaned``) and not under a legal hold, checked in the same
        update, so a case opened or a hold placed a moment earlier always wins."""
        with self._engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA secure_delete=ON")
            changed = conn.execute(
                update(evidence_items)
                .where(
                    evidence_items.c.id == item_id,
                    evidence_items.c.legal_hold.is_(False),
                    *_caseless(created_before),
                )
                .values(
                    data_key=None,
                    context=None,
                    destroyed_at=utc(at),
                    destroyed_by=actor,
                    destroy_reason=reason,
                )
            ).rowcount
        return bool(changed)

    def live(self, item_ids: Iterable[str]) -> set[str]:
        """Those of ``item_ids`` that name an item not yet destroyed."""
        ids = sorted(set(item_ids))
        found: set[str] = set()
        with self._engine.connect() as conn:
            for chunk in chunked(ids, 500):
                query = select(evidence_items.c.id).where(
                    evidence_items.c.id.in_(chunk), evidence_items.c.destroyed_at.is_(None)
                )
                found.update(conn.execute(query).scalars())
        return found

    def preserve(
        self, item_ids: Iterable[str], *, until: datetime, reason: str, at: datetime
    ) -> builtins.list[EvidenceItem]:
        """``preserve_items`` in a transaction of its own."""
        with self._engine.begin() as conn:
            return preserve_items(conn, item_ids, until=until, reason=reason, at=at)

    def set_hold(self, item_id: str, *, reason: str | None, at: datetime) -> bool:
        """Place (``reason`` given) or release a legal hold on a live item; False when the
        item is destroyed."""
        with self._engine.begin() as conn:
            changed = conn.execute(
                update(evidence_items)
                .where(evidence_items.c.id == item_id, evidence_items.c.destroyed_at.is_(None))
                .values(
                    legal_hold=reason is not None,
                    hold_reason=reason,
                    held_at=utc(at) if reason is not None else None,
                )
            ).rowcount
            if not changed:
                self._require(conn, item_id)
        return bool(changed)

    def destroy(self, item_id: str, *, at: datetime, actor: str, reason: str) -> bool:
        """Erase the wrapped data key and the sealed context (crypto-erasure) if the item
        is live, not held and past its retention; False (nothing changed) otherwise."""
        with self._engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                # Freed cells are zeroed rather than left in the file's free space.
                conn.exec_driver_sql("PRAGMA secure_delete=ON")
            changed = conn.execute(
                update(evidence_items)
                .where(
                    evidence_items.c.id == item_id,
                    evidence_items.c.destroyed_at.is_(None),
                    evidence_items.c.legal_hold.is_(False),
                    evidence_items.c.retain_until <= utc(at),
                )
                .values(
                    data_key=None,
                    context=None,
                    destroyed_at=utc(at),
                    destroyed_by=actor,
                    destroy_reason=reason,
                )
            ).rowcount
            if not changed:
                self._require(conn, item_id)
        return bool(changed)

    @staticmethod
    def _require(conn: Connection, item_id: str) -> None:
        found = conn.execute(
            select(evidence_items.c.id).where(evidence_items.c.id == item_id)
        ).first()
        if found is None:
            raise UnknownEvidence(item_id)
