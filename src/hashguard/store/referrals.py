"""Hotline referral tasks: opened, marked done or cancelled, each change with its audit
event in the same transaction.

A case has at most one open-or-done task per hotline (a partial unique index): opening
again returns the open task; two people opening at once get the same one. Closing is a
conditional update (``WHERE state = 'open'``), so a task is closed once, by one person.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from hashguard.domain.audit import AuditAction
from hashguard.domain.referrals import (
    ReferralFacts,
    ReferralState,
    ReferralTask,
    facts_from_json,
    facts_to_json,
)
from hashguard.store._util import aware, stamp
from hashguard.store.audit import append_event
from hashguard.store.schema import referral_tasks

#: the states that hold a case's place with a hotline (the partial unique index)
LIVE = (str(ReferralState.OPEN), str(ReferralState.DONE))


class UnknownReferral(LookupError):
    def __init__(self, task_id: int) -> None:
        super().__init__(f"no referral task #{task_id}")
        self.task_id = task_id


class ReferralClosed(RuntimeError):
    """The task is no longer open (done or cancelled, perhaps by someone else meanwhile)."""

    def __init__(self, task: ReferralTask) -> None:
        super().__init__(f"referral task #{task.id} is {task.state}: it can no longer change")
        self.task = task


def _task(row: Row[Any]) -> ReferralTask:
    return ReferralTask(
        id=row.id,
        case_id=row.case_id,
        hotline=row.hotline,
        form_url=row.form_url,
        state=ReferralState(row.state),
        facts=facts_from_json(row.facts),
        reference=row.reference,
        cancel_reason=row.cancel_reason,
        created_at=stamp(row.created_at),
        created_by=row.created_by,
        closed_at=aware(row.closed_at),
        closed_by=row.closed_by,
    )


def _get(conn: Connection, task_id: int) -> ReferralTask:
    row = conn.execute(select(referral_tasks).where(referral_tasks.c.id == task_id)).first()
    if row is None:
        raise UnknownReferral(task_id)
    return _task(row)


def _live(conn: Connection, case_id: int, hotline: str) -> ReferralTask | None:
    row = conn.execute(
        select(referral_tasks).where(
            referral_tasks.c.case_id == case_id,
            referral_tasks.c.hotline == hotline,
            referral_tasks.c.state.in_(LIVE),
        )
    ).first()
    return _task(row) if row is not None else None


class ReferralStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, task_id: int) -> ReferralTask:
        with self._engine.connect() as conn:
            return _get(conn, task_id)

    def live(self, case_id: int, hotline: str) -> ReferralTask | None:
        """The case's open or done task for ``hotline``, if it has one."""
        with self._engine.connect() as conn:
            return _live(conn, case_id, hotline)

    def list(
        self,
        *,
        state: ReferralState | None = None,
        case_id: int | None = None,
        hotline: str | None = None,
        limit: int = 1000,
    ) -> builtins.list[ReferralTask]:
        """Tasks, oldest first."""
        query = select(referral_tasks).order_by(referral_tasks.c.id).limit(limit)
        if state is not None:
            query = query.where(referral_tasks.c.state == str(state))
        if case_id is not None:
            query = query.where(referral_tasks.c.case_id == case_id)
        if hotline is not None:
            query = query.where(referral_tasks.c.hotline == hotline)
        with self._engine.connect() as conn:
            return [_task(row) for row in conn.execute(query)]

    def open(
        self,
        *,
        case_id: int,
        hotline: str,
        form_url: str,
        facts: ReferralFacts,
        actor: str,
        at: datetime,
    ) -> tuple[ReferralTask, bool]:
        """The case's open-or-done task for ``hotline``, opened now (with its audit event)
        if it has none; and whether it was opened now."""
        try:
            with self._engine.begin() as conn:
                found = _live(conn, case_id, hotline)
                if found is not None:
                    return found, False
                task_id = conn.execute(
                    insert(referral_tasks)
                    .values(
                        case_id=case_id,
                        hotline=hotline,
                        form_url=form_url,
                        state=str(ReferralState.OPEN),
                        facts=facts_to_json(facts),
                        created_at=at,
                        created_by=actor,
                    )
                    .returning(referral_tasks.c.id)
                ).scalar_one()
                append_event(
                    conn,
                    actor,
                    AuditAction.REFERRAL_OPENED,
                    f"referral:{task_id}",
                    {"case": case_id, "hotline": hotline, "form_url": form_url},
                    at=at,
                )
                return _get(conn, task_id), True
        except IntegrityError:
            # someone opened the same task at the same moment: theirs is the task
            with self._engine.connect() as conn:
                found = _live(conn, case_id, hotline)
            if found is None:
                raise
            return found, False

    def close(
        self,
        task_id: int,
        *,
        state: ReferralState,
        actor: str,
        at: datetime,
        reference: str | None = None,
        reason: str | None = None,
    ) -> ReferralTask:
        """Mark an open task ``done`` (with the hotline's ``reference``) or ``cancelled``
        (with a ``reason``), with its audit event; ``ReferralClosed`` if it is no longer
        open, ``UnknownReferral`` if there is no such task."""
        if state is ReferralState.DONE:
            assert reference is not None
            values: dict[str, Any] = {"reference": reference}
            action, details = AuditAction.REFERRAL_DONE, {"reference": reference}
        elif state is ReferralState.CANCELLED:
            assert reason is not None
            values = {"cancel_reason": reason}
            action, details = AuditAction.REFERRAL_CANCELLED, {"reason": reason}
        else:
            raise ValueError(f"a task is closed as done or cancelled, not {state}")
        with self._engine.begin() as conn:
            done = conn.execute(
                update(referral_tasks)
                .where(
                    referral_tasks.c.id == task_id,
                    referral_tasks.c.state == str(ReferralState.OPEN),
                )
                .values(state=str(state), closed_at=at, closed_by=actor, **values)
            )
            task = _get(conn, task_id)
            if done.rowcount != 1:
                raise ReferralClosed(task)
            append_event(
                conn,
                actor,
                action,
                f"referral:{task_id}",
                {"case": task.case_id, "hotline": task.hotline, **details},
                at=at,
            )
            return task
