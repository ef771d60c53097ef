"""DSA Art. 16 notices: received with their audit event and acknowledgement webhooks in
one transaction; each later state change with its audit event.

The resolver's queue is ``due``: received notices, notices a cut-off run left
``resolving``, and failed ones whose backoff has passed, by (priority, received_at, id).
Items' progress (``save_items``) is written as each item is taken through the pipeline,
so a resolver killed between two items does not do the first one again.

A resolver works on a notice under its lease (``claim``: one conditional ``UPDATE``, so
of two resolvers racing for a notice exactly one gets it); ``due`` leaves out notices
another resolver holds, so a second resolver goes on with the others. A killed
resolver's notice is due again once its lease runs out.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, insert, or_, select, update

from hashguard.domain.actions import NewAction
from hashguard.domain.audit import AuditAction
from hashguard.domain.notices import (
    NewNotice,
    Notice,
    NoticeCategory,
    NoticeChannel,
    NoticeItem,
    NoticeState,
    Notifier,
)
from hashguard.store._util import aware, stamp, utc
from hashguard.store.actions import enqueue
from hashguard.store.audit import append_event
from hashguard.store.schema import notices

#: the audit event of each state a notice moves to
STATE_EVENTS = {
    NoticeState.RESOLVING: AuditAction.NOTICE_RESOLVING,
    NoticeState.RESOLVED: AuditAction.NOTICE_RESOLVED,
    NoticeState.NOT_FOUND: AuditAction.NOTICE_NOT_FOUND,
    NoticeState.UNDECODABLE: AuditAction.NOTICE_UNDECODABLE,
    NoticeState.FAILED: AuditAction.NOTICE_FAILED,
}
_QUEUE = (notices.c.priority, notices.c.received_at, notices.c.id)


class NoticeBusy(RuntimeError):
    """Another resolver holds the notice's lease."""

    def __init__(self, notice_id: int) -> None:
        super().__init__(f"notice #{notice_id} is being resolved by another process")
        self.notice_id = notice_id


class UnknownNotice(LookupError):
    def __init__(self, notice_id: int) -> None:
        super().__init__(f"no notice #{notice_id}")
        self.notice_id = notice_id


def _notice(row: Row[Any]) -> Notice:
    return Notice(
        id=row.id,
        items=tuple(NoticeItem.from_json(i) for i in row.items),
        category=NoticeCategory(row.category),
        explanation=row.explanation,
        notifier=Notifier.from_json(row.notifier),
        good_faith=bool(row.good_faith),
        channel=NoticeChannel(row.channel),
        priority=row.priority,
        state=NoticeState(row.state),
        received_at=stamp(row.received_at),
        updated_at=stamp(row.updated_at),
        token_id=row.token_id,
        attempts=row.attempts,
        next_attempt_at=aware(row.next_attempt_at),
        last_error=row.last_error,
        resolved_at=aware(row.resolved_at),
        lease_owner=row.lease_owner,
        leased_until=aware(row.leased_until),
    )


def _free(now: datetime) -> Any:
    """No resolver holds the notice at ``now`` (none took it, or its lease ran out)."""
    return or_(notices.c.leased_until.is_(None), notices.c.leased_until <= utc(now))


def _get(conn: Connection, notice_id: int) -> Notice:
    row = conn.execute(select(notices).where(notices.c.id == notice_id)).first()
    if row is None:
        raise UnknownNotice(notice_id)
    return _notice(row)


def _items(items: Sequence[NoticeItem]) -> list[dict[str, Any]]:
    return [i.as_json() for i in items]


# bound parameters, not literal values: SQLAlchemy compiles the statement once
_RECEIVE = insert(notices).returning(*notices.c)


class NoticeStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def receive(
        self,
        notice: NewNotice,
        *,
        actor: str,
        at: datetime,
        actions: Callable[[int], Sequence[NewAction]] | None = None,
    ) -> Notice:
        """Record ``notice`` as received, with its audit event and the actions
        ``actions`` plans for its id (the acknowledgement webhooks), all together."""
        with self._engine.begin() as conn:
            row = conn.execute(
                _RECEIVE,
                {
                    "state": str(NoticeState.RECEIVED),
                    "category": str(notice.category),
                    "explanation": notice.explanation,
                    "notifier": notice.notifier.as_json(),
                    "good_faith": notice.good_faith,
                    "channel": str(notice.channel),
                    "priority": notice.priority,
                    "items": _items(notice.items),
                    "token_id": notice.token_id,
                    "attempts": 0,
                    "received_at": at,
                    "updated_at": at,
                },
            ).one()
            notice_id = row.id
            for action in actions(notice_id) if actions is not None else ():
                enqueue(conn, action, at=at)
            append_event(
                conn,
                actor,
                AuditAction.NOTICE_RECEIVED,
                f"notice:{notice_id}",
                {
                    "category": str(notice.category),
                    "channel": str(notice.channel),
                    "notifier_kind": str(notice.notifier.kind),
                    "configured": notice.notifier.configured,
                    "priority": notice.priority,
                    "items": len(notice.items),
                },
                at=at,
            )
            return _notice(row)

    def get(self, notice_id: int) -> Notice:
        with self._engine.connect() as conn:
            return _get(conn, notice_id)

    def list(
        self, *, states: Sequence[NoticeState] | None = None, limit: int = 1000
    ) -> builtins.list[Notice]:
        """Notices in queue order (configured notifiers first, then oldest first)."""
        query = select(notices).order_by(*_QUEUE).limit(limit)
        if states is not None:
            query = query.where(notices.c.state.in_([str(s) for s in states]))
        with self._engine.connect() as conn:
            return [_notice(row) for row in conn.execute(query)]

    def due(self, now: datetime, *, limit: int = 100) -> builtins.list[int]:
        """The ids of the notices the resolver is to take now, in queue order."""
        query = (
            select(notices.c.id)
            .where(
                or_(
                    notices.c.state.in_([str(NoticeState.RECEIVED), str(NoticeState.RESOLVING)]),
                    and_(
                        notices.c.state == str(NoticeState.FAILED),
                        or_(
                            notices.c.next_attempt_at.is_(None),
                            notices.c.next_attempt_at <= utc(now),
                        ),
                    ),
                ),
                _free(now),
            )
            .order_by(*_QUEUE)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [row.id for row in conn.execute(query)]

    def claim(self, notice_id: int, owner: str, *, now: datetime, until: datetime) -> bool:
        """Take the notice for ``owner`` until ``until`` unless another resolver holds it
        (its own lease is extended). Whether ``owner`` holds it now."""
        with self._engine.begin() as conn:
            taken = conn.execute(
                update(notices)
                .where(
                    notices.c.id == notice_id,
                    or_(_free(now), notices.c.lease_owner == owner),
                )
                .values(lease_owner=owner, leased_until=utc(until))
            ).rowcount
        return bool(taken)

    def release(self, notice_id: int, owner: str) -> None:
        """Give the lease up (nothing when ``owner`` no longer holds it)."""
        with self._engine.begin() as conn:
            conn.execute(
                update(notices)
                .where(notices.c.id == notice_id, notices.c.lease_owner == owner)
                .values(lease_owner=None, leased_until=None)
            )

    def save_items(
        self,
        notice_id: int,
        items: Sequence[NoticeItem],
        *,
        at: datetime,
        owner: str | None = None,
        until: datetime | None = None,
    ) -> None:
        """The items' progress within a run (no state change, no audit event: the run's
        end records both). With ``owner``, only while it holds the lease, which is
        extended to ``until``; ``NoticeBusy`` when another resolver took it over."""
        values: dict[str, Any] = {"items": _items(items), "updated_at": at}
        query = update(notices).where(notices.c.id == notice_id)
        if owner is not None:
            query = query.where(notices.c.lease_owner == owner)
            if until is not None:
                values["leased_until"] = utc(until)
        with self._engine.begin() as conn:
            done = conn.execute(query.values(**values)).rowcount
        if owner is not None and not done:
            raise NoticeBusy(notice_id)

    def move(
        self,
        notice_id: int,
        state: NoticeState,
        *,
        actor: str,
        at: datetime,
        items: Sequence[NoticeItem] | None = None,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
        owner: str | None = None,
    ) -> Notice:
        """Move the notice to ``state`` (with its items, if given) and audit it. A
        failed run counts an attempt and says when the next one is due. With ``owner``,
        only while no other resolver holds the lease (``NoticeBusy`` otherwise)."""
        with self._engine.begin() as conn:
            before = _get(conn, notice_id)
            if owner is not None and before.lease_owner not in (None, owner):
                raise NoticeBusy(notice_id)
            values: dict[str, Any] = {"state": str(state), "updated_at": at}
            if items is not None:
                values["items"] = _items(items)
            if state is NoticeState.FAILED:
                values.update(
                    attempts=before.attempts + 1,
                    last_error=(error or "failed")[:2000],
                    next_attempt_at=next_attempt_at,
                )
            elif state is not NoticeState.RESOLVING:
                values.update(resolved_at=at, next_attempt_at=None)
            conn.execute(update(notices).where(notices.c.id == notice_id).values(**values))
            after = _get(conn, notice_id)
            details: dict[str, Any] = {"from": str(before.state), "to": str(state)}
            if state is not NoticeState.RESOLVING:
                details["items"] = [
                    {"state": str(i.state), "case": i.case_id, "outcome": i.outcome}
                    for i in after.items
                ]
            if error is not None:
                details["error"] = error[:500]
            append_event(conn, actor, STATE_EVENTS[state], f"notice:{notice_id}", details, at=at)
            return after
