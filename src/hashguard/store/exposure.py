"""The reveal gate: a reviewer's recent reveals and grants, read and written under a lock
on that reviewer, so the exposure limit holds against concurrent reveals; and grants.

A gate is one transaction. It first writes the reviewer's ``users`` row (a no-op
update): PostgreSQL then holds that row's lock and SQLite its write lock until commit,
so two reveals by one reviewer are decided one after the other. Its audit event is
appended last (``append_event``), in the same transaction as the reveal it records.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, insert, select, update

from hashguard.domain.audit import AuditAction, AuditEvent
from hashguard.domain.exposure import RevealGrant
from hashguard.store._util import stamp, utc
from hashguard.store.audit import append_event
from hashguard.store.schema import reveal_grants, reveals, users


class UnknownReviewer(LookupError):
    def __init__(self, who: str) -> None:
        super().__init__(f"there is no person {who}")


def _grant(row: Row[Any]) -> RevealGrant:
    return RevealGrant(
        id=row.id,
        user_id=row.user_id,
        extra=row.extra,
        granted_by=row.granted_by,
        reason=row.reason,
        at=stamp(row.at),
        expires_at=stamp(row.expires_at),
    )


def _grants(conn: Connection, at: datetime, user_id: int | None = None) -> list[RevealGrant]:
    query = (
        select(reveal_grants)
        .where(reveal_grants.c.expires_at > utc(at), reveal_grants.c.at <= utc(at))
        .order_by(reveal_grants.c.id)
    )
    if user_id is not None:
        query = query.where(reveal_grants.c.user_id == user_id)
    return [_grant(row) for row in conn.execute(query)]


class RevealGate:
    """One reviewer's reveals, locked for one decision (see the module)."""

    def __init__(self, conn: Connection, user_id: int) -> None:
        self._conn = conn
        self.user_id = user_id

    def reveal_times(self, since: datetime) -> list[datetime]:
        """When the reviewer revealed anything after ``since``, oldest first."""
        query = (
            select(reveals.c.at)
            .where(reveals.c.user_id == self.user_id, reveals.c.at > utc(since))
            .order_by(reveals.c.at)
        )
        return [stamp(at) for at in self._conn.execute(query).scalars()]

    def grants(self, at: datetime) -> list[RevealGrant]:
        """The reviewer's grants in force at ``at``."""
        return _grants(self._conn, at, self.user_id)

    def record_reveal(
        self, case_id: int, *, session_id: str | None, at: datetime, frame_ms: int | None = None
    ) -> None:
        """One reveal: of the case's content, or of one frame of its video (``frame_ms``);
        each counts once against the reviewer's limit."""
        self._conn.execute(
            insert(reveals).values(
                user_id=self.user_id,
                case_id=case_id,
                session_id=session_id,
                at=at,
                frame_ms=frame_ms,
            )
        )

    def audit(
        self,
        actor: str,
        action: AuditAction,
        subject: str,
        details: Mapping[str, Any],
        *,
        at: datetime,
    ) -> AuditEvent:
        """Append the decision's audit event: call it last."""
        return append_event(self._conn, actor, action, subject, details, at=at)


class ExposureStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def gate(self, user_id: int) -> Iterator[RevealGate]:
        """A locked gate on ``user_id``'s reveals; committed when the block ends without
        an exception, rolled back otherwise."""
        with self._engine.begin() as conn:
            locked = conn.execute(
                update(users).where(users.c.id == user_id).values(updated_at=users.c.updated_at)
            ).rowcount
            if not locked:
                raise UnknownReviewer(f"#{user_id}")
            yield RevealGate(conn, user_id)

    def grant(
        self,
        user_id: int,
        *,
        extra: int,
        reason: str,
        actor: str,
        at: datetime,
        expires_at: datetime,
    ) -> RevealGrant:
        """Grant ``extra`` reveals until ``expires_at``; audited as
        ``review.reveals_granted`` in the same transaction."""
        with self._engine.begin() as conn:
            name = conn.execute(select(users.c.name).where(users.c.id == user_id)).scalar()
            if name is None:
                raise UnknownReviewer(f"#{user_id}")
            new_id = conn.execute(
                insert(reveal_grants)
                .values(
                    user_id=user_id,
                    extra=extra,
                    granted_by=actor,
                    reason=reason,
                    at=at,
                    expires_at=expires_at,
                )
                .returning(reveal_grants.c.id)
            ).scalar_one()
            append_event(
                conn,
                actor,
                AuditAction.REVIEW_REVEALS_GRANTED,
                f"user:{name}",
                {"extra": extra, "until": expires_at.isoformat(), "reason": reason},
                at=at,
            )
        return RevealGrant(
            id=new_id,
            user_id=user_id,
            extra=extra,
            granted_by=actor,
            reason=reason,
            at=at,
            expires_at=expires_at,
        )

    def active_grants(self, at: datetime) -> list[RevealGrant]:
        """Every grant in force at ``at``, oldest first."""
        with self._engine.connect() as conn:
            return _grants(conn, at)

    def reveal_times(self, since: datetime) -> dict[int, list[datetime]]:
        """Reveal times after ``since`` by reviewer id, oldest first (the exposure
        page's limit column)."""
        query = (
            select(reveals.c.user_id, reveals.c.at)
            .where(reveals.c.at > utc(since))
            .order_by(reveals.c.at)
        )
        found: dict[int, list[datetime]] = {}
        with self._engine.connect() as conn:
            for row in conn.execute(query):
                found.setdefault(row.user_id, []).append(stamp(row.at))
        return found
