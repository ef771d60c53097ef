"""Named leases of background jobs: acquire, renew, release, and when a job last finished.

A lease is one row per name. ``acquire`` is a single conditional ``UPDATE`` (taken when
nobody holds it, when its holder's expiry has passed, or by its own holder), so of two
processes racing for it exactly one gets it: PostgreSQL re-checks the condition on the
row the winner just committed, SQLite serialises writers. A holder that dies keeps its
lease only until ``expires_at``; then anyone may take it. Every time is given by the
caller (its clock), so processes sharing a store must keep their clocks in step (NTP):
a lease is as exact as the clocks' agreement.
"""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, case, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hashguard.domain.leases import Lease
from hashguard.store._util import aware, stamp, utc
from hashguard.store.schema import leases

t = leases


def _lease(row: Row[Any]) -> Lease:
    return Lease(
        name=row.name,
        holder=row.holder,
        acquired_at=aware(row.acquired_at),
        expires_at=aware(row.expires_at),
        created_at=stamp(row.created_at),
        completed_at=aware(row.completed_at),
        completed_by=row.completed_by,
    )


def _ensure(conn: Connection, name: str, at: datetime) -> None:
    values = {"name": name, "created_at": at}
    if conn.dialect.name == "postgresql":
        conn.execute(pg_insert(t).values(**values).on_conflict_do_nothing())
    elif conn.dialect.name == "sqlite":
        conn.execute(sqlite_insert(t).values(**values).on_conflict_do_nothing())
    elif conn.execute(select(t.c.name).where(t.c.name == name)).first() is None:
        conn.execute(insert(t).values(**values))


class LeaseStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def ensure(self, name: str, *, at: datetime) -> Lease:
        """The lease ``name``, created (free, ``created_at`` = ``at``) if the store has
        never seen it."""
        with self._engine.begin() as conn:
            _ensure(conn, name, utc(at))
            return _lease(conn.execute(select(t).where(t.c.name == name)).one())

    def get(self, name: str) -> Lease | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.name == name)).first()
        return None if row is None else _lease(row)

    def list(self) -> builtins.list[Lease]:
        with self._engine.connect() as conn:
            return [_lease(row) for row in conn.execute(select(t).order_by(t.c.name))]

    def acquire(self, name: str, holder: str, *, at: datetime, ttl: timedelta) -> Lease | None:
        """Take ``name`` for ``holder`` until ``at + ttl``: when it is free, when its
        holder's expiry is at or before ``at``, or when ``holder`` holds it already (then
        this extends it). The lease as taken, or None when another holder has it."""
        moment = utc(at)
        if ttl <= timedelta(0):
            raise ValueError("a lease's ttl must be positive")
        free = or_(t.c.holder.is_(None), t.c.expires_at.is_(None), t.c.expires_at <= moment)
        still_ours = and_(t.c.holder == holder, t.c.expires_at > moment)
        with self._engine.begin() as conn:
            _ensure(conn, name, moment)
            row = conn.execute(
                update(t)
                .where(t.c.name == name, or_(free, t.c.holder == holder))
                .values(
                    holder=holder,
                    acquired_at=case((still_ours, t.c.acquired_at), else_=moment),
                    expires_at=moment + ttl,
                )
                .returning(*t.c)
            ).first()
        return None if row is None else _lease(row)

    def renew(self, name: str, holder: str, *, at: datetime, ttl: timedelta) -> bool:
        """Extend ``holder``'s lease to ``at + ttl``; False (and nothing changes) when it
        no longer holds it at ``at``: its expiry passed, or another holder took it."""
        moment = utc(at)
        with self._engine.begin() as conn:
            done = conn.execute(
                update(t)
                .where(t.c.name == name, t.c.holder == holder, t.c.expires_at > moment)
                .values(expires_at=moment + ttl)
            )
        return done.rowcount == 1

    def release(self, name: str, holder: str, *, at: datetime, completed: bool = False) -> bool:
        """Give the lease up; with ``completed``, record that ``holder`` finished the job
        at ``at``. False (and nothing recorded) when ``holder`` did not hold it at ``at``
        (its expiry passed: another process may be running the job)."""
        moment = utc(at)
        values: dict[str, Any] = {"holder": None, "acquired_at": None, "expires_at": None}
        if completed:
            values |= {"completed_at": moment, "completed_by": holder}
        with self._engine.begin() as conn:
            done = conn.execute(
                update(t)
                .where(t.c.name == name, t.c.holder == holder, t.c.expires_at > moment)
                .values(**values)
            )
            if done.rowcount == 1:
                return True
            # expired but nobody took it over: drop our name, record nothing
            conn.execute(
                update(t)
                .where(t.c.name == name, t.c.holder == holder)
                .values(holder=None, acquired_at=None, expires_at=None)
            )
        return False
