"""Action persistence: the transactional outbox, its leases, dead letters and quarantine records.

``enqueue(conn, action)`` runs inside another store's transaction, so a decision and
the actions it causes commit together or not at all. Dispatchers take due entries with
a lease (one ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)`` on
PostgreSQL; SQLite serialises writers): a dispatcher killed mid-delivery leaves its
entries pending, and another takes them once the lease has run out.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hashguard.domain.actions import (
    ActionKind,
    ActionState,
    EventType,
    NewAction,
    OutboxAction,
    QuarantineRecord,
    QuarantineState,
)
from hashguard.domain.audit import AuditAction
from hashguard.store._util import aware, now, stamp, utc
from hashguard.store.audit import append_event
from hashguard.store.objquarantine import ObjectQuarantines
from hashguard.store.schema import action_outbox, quarantine_records

t = action_outbox
q = quarantine_records


class UnknownAction(LookupError):
    def __init__(self, action_id: int) -> None:
        super().__init__(f"no action {action_id}")
        self.action_id = action_id


class NotDead(ValueError):
    def __init__(self, action_id: int) -> None:
        super().__init__(f"action {action_id} is not a dead letter")
        self.action_id = action_id


class LeaseLost(RuntimeError):
    """The dispatcher's lease on an entry ran out and another dispatcher may hold it."""


class NotQuarantined(ValueError):
    pass


def _action(row: Row[Any]) -> OutboxAction:
    return OutboxAction(
        id=row.id,
        kind=ActionKind(row.kind),
        event=EventType(row.event) if row.event else None,
        target=row.target,
        idempotency_key=row.idempotency_key,
        subject=row.subject,
        payload=dict(row.payload),
        state=ActionState(row.state),
        attempts=row.attempts,
        next_attempt_at=stamp(row.next_attempt_at),
        created_at=stamp(row.created_at),
        last_error=row.last_error,
        delivered_at=aware(row.delivered_at),
        dead_at=aware(row.dead_at),
        retried_at=aware(row.retried_at),
        lease_owner=row.lease_owner,
        lease_until=aware(row.lease_until),
    )


def _record(row: Row[Any]) -> QuarantineRecord:
    return QuarantineRecord(
        action_id=row.action_id,
        state=QuarantineState(row.state),
        original_path=row.original_path,
        original_path_raw=bytes(row.original_path_raw),
        quarantine_path=row.quarantine_path,
        sha256=row.sha256,
        size=row.size,
        mode=row.mode,
        uid=row.uid,
        gid=row.gid,
        created_at=stamp(row.created_at),
        quarantined_at=aware(row.quarantined_at),
        restored_at=aware(row.restored_at),
        restored_by=row.restored_by,
    )


# statements with bound parameters (not literal values): SQLAlchemy compiles each once
_ENQUEUE = {
    "postgresql": pg_insert(t).on_conflict_do_nothing(),
    "sqlite": sqlite_insert(t).on_conflict_do_nothing(),
}
_ID_BY_KEY = select(t.c.id).where(t.c.idempotency_key == bindparam("key"))


def enqueue(conn: Connection, action: NewAction, *, at: datetime | None = None) -> int:
    """Put ``action`` in the outbox inside the caller's transaction; its id. An entry with
    the same idempotency key already there is kept as it is (and its id returned)."""
    moment = utc(at or now())
    values = {
        "kind": str(action.kind),
        "event": str(action.event) if action.event else None,
        "target": action.target,
        "idempotency_key": action.idempotency_key,
        "subject": action.subject,
        "payload": dict(action.payload),
        "state": str(ActionState.PENDING),
        "attempts": 0,
        "next_attempt_at": moment,
        "created_at": moment,
    }
    conn.execute(_ENQUEUE[conn.dialect.name], values)
    return int(conn.execute(_ID_BY_KEY, {"key": action.idempotency_key}).scalar_one())


class BoundOutbox:
    """The outbox inside one open transaction (what ``hashguard.actions`` enqueues into
    when a decision and its actions must commit together)."""

    def __init__(self, conn: Connection, *, at: datetime | None = None) -> None:
        self._conn = conn
        self._at = at

    def enqueue(self, action: NewAction) -> int:
        return enqueue(self._conn, action, at=self._at)


class ActionStore(ObjectQuarantines):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- the outbox ----------------------------------------------------------------------

    def enqueue(self, action: NewAction, *, at: datetime | None = None) -> int:
        """``enqueue`` in a transaction of its own."""
        with self._engine.begin() as conn:
            return enqueue(conn, action, at=at)

    @contextmanager
    def transaction(self, *, at: datetime | None = None) -> Iterator[BoundOutbox]:
        """An outbox whose entries commit together when the block ends without error."""
        with self._engine.begin() as conn:
            yield BoundOutbox(conn, at=at)

    def get(self, action_id: int) -> OutboxAction:
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.id == action_id)).first()
        if row is None:
            raise UnknownAction(action_id)
        return _action(row)

    def find_by_key(self, idempotency_key: str) -> OutboxAction | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.idempotency_key == idempotency_key)).first()
        return None if row is None else _action(row)

    def list(
        self, *, state: ActionState | None = None, limit: int = 100
    ) -> builtins.list[OutboxAction]:
        """Newest first."""
        query = select(t).order_by(t.c.id.desc()).limit(limit)
        if state is not None:
            query = query.where(t.c.state == str(state))
        with self._engine.connect() as conn:
            return [_action(row) for row in conn.execute(query)]

    def about(
        self, subject: str, *, kind: ActionKind | None = None, limit: int = 1000
    ) -> builtins.list[OutboxAction]:
        """The entries about ``subject`` (``case:17``), of ``kind`` if given, oldest
        first. (No index on ``subject`` yet: it reads the outbox.)"""
        query = select(t).where(t.c.subject == subject).order_by(t.c.id).limit(limit)
        if kind is not None:
            query = query.where(t.c.kind == str(kind))
        with self._engine.connect() as conn:
            return [_action(row) for row in conn.execute(query)]

    def pending(
        self, kind: ActionKind, *, sha256: str | None = None
    ) -> builtins.list[OutboxAction]:
        """The entries of ``kind`` not carried out yet (due, retrying, or held by a
        dispatcher now), oldest first; with ``sha256``, only those whose payload names
        that content (a quarantine's does). Reads the pending part of the outbox (the
        state index), not an index on the content: for a service's short change."""
        query = (
            select(t)
            .where(t.c.kind == str(kind), t.c.state == str(ActionState.PENDING))
            .order_by(t.c.id)
        )
        if sha256 is not None:
            query = query.where(t.c.payload["sha256"].as_string() == sha256)
        with self._engine.connect() as conn:
            return [_action(row) for row in conn.execute(query)]

    def dead_letters(self, limit: int = 1000) -> builtins.list[OutboxAction]:
        return self.list(state=ActionState.DEAD, limit=limit)

    def counts(self) -> dict[ActionState, int]:
        query = select(t.c.state, func.count()).group_by(t.c.state)
        with self._engine.connect() as conn:
            found = {ActionState(state): int(n) for state, n in conn.execute(query)}
        return {state: found.get(state, 0) for state in ActionState}

    def claim_due(
        self, owner: str, at: datetime, *, limit: int = 20, lease: timedelta
    ) -> builtins.list[OutboxAction]:
        """Lease up to ``limit`` pending entries due at ``at`` (oldest first) to ``owner``
        until ``at + lease``. Entries leased to another dispatcher are skipped until the
        lease runs out, so a dead dispatcher's entries are taken over, never lost."""
        moment = utc(at)
        due = (
            select(t.c.id)
            .where(
                t.c.state == str(ActionState.PENDING),
                t.c.next_attempt_at <= moment,
                or_(t.c.lease_until.is_(None), t.c.lease_until < moment),
            )
            .order_by(t.c.next_attempt_at, t.c.id)
            .limit(limit)
        )
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            rows = conn.execute(
                update(t)
                .where(t.c.id.in_(due.scalar_subquery()))
                .values(lease_owner=owner, lease_until=moment + lease)
                .returning(*t.c)
            ).all()
        return sorted((_action(row) for row in rows), key=lambda a: (a.next_attempt_at, a.id))

    def _settle(self, conn: Connection, action_id: int, owner: str, **values: Any) -> bool:
        done = conn.execute(
            update(t)
            .where(
                t.c.id == action_id,
                t.c.lease_owner == owner,
                t.c.state == str(ActionState.PENDING),
            )
            .values(attempts=t.c.attempts + 1, lease_owner=None, lease_until=None, **values)
        )
        return done.rowcount == 1

    def mark_delivered(self, action_id: int, owner: str, at: datetime) -> bool:
        """False when ``owner`` no longer holds the entry (its lease was taken over)."""
        with self._engine.begin() as conn:
            return self._settle(
                conn,
                action_id,
                owner,
                state=str(ActionState.DELIVERED),
                delivered_at=utc(at),
                last_error=None,
            )

    def mark_failed(self, action_id: int, owner: str, error: str, next_at: datetime) -> bool:
        with self._engine.begin() as conn:
            return self._settle(
                conn, action_id, owner, last_error=error[:2000], next_attempt_at=utc(next_at)
            )

    def mark_dead(self, action_id: int, owner: str, error: str, at: datetime) -> bool:
        with self._engine.begin() as conn:
            return self._settle(
                conn,
                action_id,
                owner,
                state=str(ActionState.DEAD),
                last_error=error[:2000],
                dead_at=utc(at),
            )

    def cancel(self, action_id: int, *, error: str, at: datetime) -> bool:
        """Stop a pending entry no dispatcher holds now: it becomes a dead letter with
        ``error`` as why (an operator can still ``retry`` it). False when it is not
        pending or is leased (being carried out: let it finish)."""
        moment = utc(at)
        with self._engine.begin() as conn:
            done = conn.execute(
                update(t)
                .where(
                    t.c.id == action_id,
                    t.c.state == str(ActionState.PENDING),
                    or_(t.c.lease_until.is_(None), t.c.lease_until < moment),
                )
                .values(
                    state=str(ActionState.DEAD),
                    last_error=error[:2000],
                    dead_at=moment,
                    lease_owner=None,
                    lease_until=None,
                )
            )
            return done.rowcount == 1

    def retry(self, action_id: int, *, actor: str, at: datetime | None = None) -> OutboxAction:
        """Put a dead letter back to pending, due now; the retry horizon restarts."""
        moment = utc(at or now())
        with self._engine.begin() as conn:
            done = conn.execute(
                update(t)
                .where(t.c.id == action_id, t.c.state == str(ActionState.DEAD))
                .values(
                    state=str(ActionState.PENDING),
                    next_attempt_at=moment,
                    retried_at=moment,
                    dead_at=None,
                    lease_owner=None,
                    lease_until=None,
                )
            )
            if done.rowcount != 1:
                exists = conn.execute(select(t.c.id).where(t.c.id == action_id)).first()
                if exists is None:
                    raise UnknownAction(action_id)
                raise NotDead(action_id)
            append_event(conn, actor, AuditAction.ACTION_RETRIED, str(action_id), {}, at=moment)
        return self.get(action_id)

    # -- quarantine ----------------------------------------------------------------------

    def begin_quarantine(self, record: QuarantineRecord) -> QuarantineRecord:
        """Record a file about to be moved (state ``moving``). When the action already
        has a record (a retry after a crash), that first record is kept and returned:
        it holds the original file's facts, which the move has since changed."""
        with self._engine.begin() as conn:
            existing = conn.execute(select(q).where(q.c.action_id == record.action_id)).first()
            if existing is None:
                conn.execute(
                    insert(q).values(
                        action_id=record.action_id,
                        state=str(QuarantineState.MOVING),
                        original_path=record.original_path,
                        original_path_raw=record.original_path_raw,
                        quarantine_path=record.quarantine_path,
                        sha256=record.sha256,
                        size=record.size,
                        mode=record.mode,
                        uid=record.uid,
                        gid=record.gid,
                        created_at=utc(record.created_at),
                    )
                )
                return record
        return _record(existing)

    def drop_moving(self, action_id: int) -> None:
        """Forget a ``moving`` record whose move was refused before anything moved."""
        with self._engine.begin() as conn:
            conn.execute(
                delete(q).where(
                    q.c.action_id == action_id, q.c.state == str(QuarantineState.MOVING)
                )
            )

    def quarantine_record(self, action_id: int) -> QuarantineRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(q).where(q.c.action_id == action_id)).first()
        return None if row is None else _record(row)

    def quarantine_records(self) -> builtins.list[QuarantineRecord]:
        with self._engine.connect() as conn:
            return [_record(r) for r in conn.execute(select(q).order_by(q.c.action_id))]

    def complete_quarantine(
        self,
        action_id: int,
        owner: str,
        at: datetime,
        *,
        followups: Sequence[NewAction],
        actor: str,
    ) -> None:
        """In one transaction: the record says quarantined, the outbox entry delivered,
        the follow-up webhooks (``content.quarantined``) are enqueued and the audit log
        has the event. Raises ``LeaseLost`` (and changes nothing) when ``owner`` no
        longer holds the entry."""
        moment = utc(at)
        with self._engine.begin() as conn:
            conn.execute(
                update(q)
                .where(q.c.action_id == action_id, q.c.state == str(QuarantineState.MOVING))
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
            row = conn.execute(select(q).where(q.c.action_id == action_id)).one()
            append_event(
                conn,
                actor,
                AuditAction.CONTENT_QUARANTINED,
                f"action:{action_id}",
                {"sha256": row.sha256, "size": row.size, "path": row.original_path},
                at=moment,
            )

    def mark_restored(
        self,
        action_id: int,
        *,
        actor: str,
        at: datetime | None = None,
        followups: Sequence[NewAction] = (),
    ) -> QuarantineRecord:
        moment = utc(at or now())
        with self._engine.begin() as conn:
            done = conn.execute(
                update(q)
                .where(q.c.action_id == action_id, q.c.state == str(QuarantineState.QUARANTINED))
                .values(state=str(QuarantineState.RESTORED), restored_at=moment, restored_by=actor)
            )
            if done.rowcount != 1:
                raise NotQuarantined(f"action {action_id} has no file in quarantine")
            for followup in followups:
                enqueue(conn, followup, at=moment)
            row = conn.execute(select(q).where(q.c.action_id == action_id)).one()
            append_event(
                conn,
                actor,
                AuditAction.CONTENT_RESTORED,
                f"action:{action_id}",
                {"sha256": row.sha256, "path": row.original_path},
                at=moment,
            )
        return _record(row)
