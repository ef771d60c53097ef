"""Object-quarantine records: where a matched object was, where its verified copy is held,
and the transitions the dispatcher commits together with its outbox entry and audit event."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, insert, select, update

from hashguard.domain.actions import (
    ActionState,
    HoldKind,
    NewAction,
    ObjectQuarantineRecord,
    OriginalFate,
    QuarantineState,
)
from hashguard.domain.audit import AuditAction
from hashguard.store._util import aware, now, stamp, utc
from hashguard.store.audit import append_event
from hashguard.store.schema import object_quarantines

o = object_quarantines


class ObjectNotQuarantined(ValueError):
    pass


def _record(row: Row[Any]) -> ObjectQuarantineRecord:
    return ObjectQuarantineRecord(
        action_id=int(row.action_id),
        state=QuarantineState(row.state),
        bucket=row.bucket,
        key=row.key,
        version_id=row.version_id,
        etag=row.etag,
        sha256=row.sha256,
        size=int(row.size),
        quarantine_bucket=row.quarantine_bucket,
        quarantine_key=row.quarantine_key,
        quarantine_version_id=row.quarantine_version_id,
        lock=HoldKind(row.lock),
        lock_note=row.lock_note,
        original=OriginalFate(row.original),
        created_at=stamp(row.created_at),
        quarantined_at=aware(row.quarantined_at),
        restored_at=aware(row.restored_at),
        restored_by=row.restored_by,
    )


def audit_details(record: ObjectQuarantineRecord) -> dict[str, Any]:
    """What a quarantine's audit events say: where from and to, never the content."""
    return {
        "object": record.uri,
        "etag": record.etag,
        "sha256": record.sha256,
        "size": record.size,
        "quarantine": record.quarantine_uri,
        "quarantine_version_id": record.quarantine_version_id,
        "hold": str(record.lock),
        "hold_note": record.lock_note,
        "original": str(record.original),
    }


class ObjectQuarantines:
    """``ActionStore``'s object-quarantine records (a mixin: it shares the engine and
    the outbox entry's lease check)."""

    _engine: Engine

    def _settle(self, conn: Connection, action_id: int, owner: str, **values: Any) -> bool:
        raise NotImplementedError

    def begin_object_quarantine(self, record: ObjectQuarantineRecord) -> ObjectQuarantineRecord:
        """Record an object about to be quarantined (``moving``); a retry keeps the first
        record (it names the copy's key, so a second attempt finds what the first did)."""
        with self._engine.begin() as conn:
            existing = conn.execute(select(o).where(o.c.action_id == record.action_id)).first()
            if existing is not None:
                return _record(existing)
            conn.execute(
                insert(o).values(
                    action_id=record.action_id,
                    state=str(QuarantineState.MOVING),
                    bucket=record.bucket,
                    key=record.key,
                    version_id=record.version_id,
                    etag=record.etag,
                    sha256=record.sha256,
                    size=record.size,
                    quarantine_bucket=record.quarantine_bucket,
                    quarantine_key=record.quarantine_key,
                    quarantine_version_id=record.quarantine_version_id,
                    lock=str(record.lock),
                    lock_note=record.lock_note,
                    original=str(record.original),
                    created_at=utc(record.created_at),
                )
            )
        return record

    def note_object_copy(
        self, action_id: int, *, version_id: str | None, lock: HoldKind, note: str | None
    ) -> None:
        """The verified copy's version and how it is held (before the original goes)."""
        with self._engine.begin() as conn:
            conn.execute(
                update(o)
                .where(o.c.action_id == action_id)
                .values(quarantine_version_id=version_id, lock=str(lock), lock_note=note)
            )

    def drop_object_moving(self, action_id: int) -> None:
        """Forget a ``moving`` record whose quarantine was refused before anything moved."""
        with self._engine.begin() as conn:
            conn.execute(
                delete(o).where(
                    o.c.action_id == action_id, o.c.state == str(QuarantineState.MOVING)
                )
            )

    def object_quarantine(self, action_id: int) -> ObjectQuarantineRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(o).where(o.c.action_id == action_id)).first()
        return None if row is None else _record(row)

    def object_quarantines(
        self, *, sha256: str | None = None
    ) -> builtins.list[ObjectQuarantineRecord]:
        query = select(o).order_by(o.c.action_id)
        if sha256 is not None:
            query = query.where(o.c.sha256 == sha256)
        with self._engine.connect() as conn:
            return [_record(r) for r in conn.execute(query)]

    def complete_object_quarantine(
        self,
        action_id: int,
        owner: str,
        at: datetime,
        *,
        followups: Sequence[NewAction],
        actor: str,
    ) -> None:
        """In one transaction: the record says quarantined, the outbox entry delivered,
        its follow-ups enqueued, ``content.quarantined`` audited. Raises ``LeaseLost``."""
        from hashguard.store.actions import LeaseLost, enqueue  # noqa: PLC0415 - a cycle

        moment = utc(at)
        with self._engine.begin() as conn:
            conn.execute(
                update(o)
                .where(o.c.action_id == action_id, o.c.state == str(QuarantineState.MOVING))
                .values(state=str(QuarantineState.QUARANTINED), quarantined_at=moment)
            )
            if not self._settle(
                conn,
                action_id,
                owner,
                state=str(ActionState.DELIVERED),
                delivered_at=moment,
                last_error=None,
            ):
                raise LeaseLost(f"action {action_id} is no longer leased to {owner}")
            for followup in followups:
                enqueue(conn, followup, at=moment)
            record = _record(conn.execute(select(o).where(o.c.action_id == action_id)).one())
            append_event(
                conn,
                actor,
                AuditAction.CONTENT_QUARANTINED,
                f"action:{action_id}",
                audit_details(record),
                at=moment,
            )

    def complete_object_restore(
        self,
        restore_id: int,
        quarantine_id: int,
        owner: str,
        at: datetime,
        *,
        actor: str,
        restored_by: str,
    ) -> None:
        """In one transaction: the record says restored, the restore entry delivered,
        ``content.restored`` audited. Raises ``LeaseLost``."""
        from hashguard.store.actions import LeaseLost  # noqa: PLC0415 - a cycle

        moment = utc(at)
        with self._engine.begin() as conn:
            conn.execute(
                update(o)
                .where(
                    o.c.action_id == quarantine_id, o.c.state == str(QuarantineState.QUARANTINED)
                )
                .values(
                    state=str(QuarantineState.RESTORED), restored_at=moment, restored_by=restored_by
                )
            )
            if not self._settle(
                conn,
                restore_id,
                owner,
                state=str(ActionState.DELIVERED),
                delivered_at=moment,
                last_error=None,
            ):
                raise LeaseLost(f"action {restore_id} is no longer leased to {owner}")
            record = _record(conn.execute(select(o).where(o.c.action_id == quarantine_id)).one())
            append_event(
                conn,
                actor,
                AuditAction.CONTENT_RESTORED,
                f"action:{quarantine_id}",
                {**audit_details(record), "restore_action": restore_id, "by": restored_by},
                at=moment or utc(now()),
            )
