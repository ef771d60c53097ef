"""Audit persistence: append-only events chained by hash, and the head row that orders them.

Appending takes a row lock on the single ``audit_state`` row (an ``UPDATE`` that bumps
its ``seq``, as ``banks._next_seq`` does): on PostgreSQL concurrent appenders from any
number of servers wait on that lock; on SQLite the ``UPDATE`` opens the write
transaction, which serialises writers. Either way each appender reads the head the
previous one committed, so the chain never forks. The same row is the in-database
anchor the verifier compares the log's end with. There is no update or delete.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, bindparam, insert, select, update

from hashguard.audit import compute_hash, event_body, normalise_details
from hashguard.domain.audit import (
    AuditAction,
    AuditEvent,
    AuditHead,
    valid_action,
    valid_actor,
)
from hashguard.store._util import aware, now
from hashguard.store.schema import audit_events, audit_state
from hashguard.store.stats import Tally
from hashguard.store.stats_events import COUNTED, tally_event

#: events read per query while streaming (keyset pagination, no long-lived cursor)
PAGE = 1000


class InvalidAuditEvent(ValueError):
    pass


class AuditHeadMissing(LookupError):
    """The head row the migration creates is gone: the database was altered by hand.
    Nothing is appended (re-seeding it would hide a truncation)."""

    def __init__(self) -> None:
        super().__init__(
            "the audit log's head row is missing: the database was altered outside "
            "hashguard; run `hashguard audit verify` and restore it from a backup"
        )


def _event(row: Row[Any]) -> AuditEvent:
    at = aware(row.at)
    assert at is not None
    return AuditEvent(
        seq=row.seq,
        at=at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        details=row.details,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


_SET_HEAD = update(audit_state).where(audit_state.c.id == 1).values(head_hash=bindparam("new_head"))


_APPEND = insert(audit_events)
#: (not ``asdict``: it deep-copies the details, which are the event's own already)
_EVENT_FIELDS = fields(AuditEvent)
_BUMP_HEAD = (
    update(audit_state)
    .where(audit_state.c.id == 1)
    .values(seq=audit_state.c.seq + 1)
    .returning(audit_state.c.seq, audit_state.c.head_hash)
)


def _take_head(conn: Connection) -> tuple[int, str]:
    """Bump the head's seq under its row lock; the new seq and the previous hash."""
    row = conn.execute(_BUMP_HEAD).first()
    if row is None:
        raise AuditHeadMissing
    return int(row.seq), str(row.head_hash)


def append_event(
    conn: Connection,
    actor: str,
    action: AuditAction,
    subject: str | None,
    details: Mapping[str, Any],
    *,
    at: datetime | None = None,
) -> AuditEvent:
    """Append an event inside the caller's transaction, so a state change and its event
    commit together. Take it last in the transaction: it holds the log's lock until
    commit, and taking other locks after it invites deadlocks."""
    if not valid_actor(actor):
        raise InvalidAuditEvent(f"{actor!r} is not an actor: kind:name, e.g. cli:root")
    if not valid_action(action):
        raise InvalidAuditEvent(f"{action!r} is not an action: dotted lowercase, e.g. bank.created")
    if subject is not None and (not subject or len(subject) > 300):
        raise InvalidAuditEvent("an event's subject is 1 to 300 characters")
    try:
        clean = normalise_details(details)
    except ValueError as exc:
        raise InvalidAuditEvent(str(exc)) from None
    seq, prev_hash = _take_head(conn)
    stamp = at or now()
    body = event_body(
        seq=seq,
        at=stamp,
        actor=actor,
        action=action,
        subject=subject,
        details=clean,
        prev_hash=prev_hash,
    )
    event = AuditEvent(
        seq=seq,
        at=stamp,
        actor=actor,
        action=action,
        subject=subject,
        details=clean,
        prev_hash=prev_hash,
        hash=compute_hash(body),
    )
    # statements with bound parameters (not literal values): SQLAlchemy compiles them once
    conn.execute(_APPEND, {f.name: getattr(event, f.name) for f in _EVENT_FIELDS})
    conn.execute(_SET_HEAD, {"new_head": event.hash})
    if action in COUNTED:
        # the event's statistics, in its transaction (``store.stats_events``); these
        # cells are only ever written under the log's lock, so they add no lock order
        tally = Tally()
        tally_event(conn, tally, action, subject, clean, stamp)
        tally.flush(conn)
    return event


class AuditStore:
    """The audit log: append and read, nothing else."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def append(
        self,
        actor: str,
        action: AuditAction,
        subject: str | None = None,
        details: Mapping[str, Any] | None = None,
        *,
        at: datetime | None = None,
    ) -> AuditEvent:
        """Append one event in its own transaction. Raises ``InvalidAuditEvent`` for a
        malformed actor or action, details that are not plain JSON or name secrets."""
        with self._engine.begin() as conn:
            return append_event(conn, actor, action, subject, details or {}, at=at)

    def head(self) -> AuditHead:
        """The head as the store recorded it with the last append; raises
        ``AuditHeadMissing`` if its row was deleted."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(audit_state.c.seq, audit_state.c.head_hash).where(audit_state.c.id == 1)
            ).first()
        if row is None:
            raise AuditHeadMissing
        return AuditHead(seq=int(row.seq), hash=str(row.head_hash))

    def events(self, after_seq: int = 0) -> Iterator[AuditEvent]:
        """Every event with ``seq > after_seq``, in seq order, read a page at a time."""
        last = after_seq
        while True:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(audit_events)
                    .where(audit_events.c.seq > last)
                    .order_by(audit_events.c.seq)
                    .limit(PAGE)
                ).all()
            for row in rows:
                yield _event(row)
            if len(rows) < PAGE:
                return
            last = rows[-1].seq
