"""Statements of reasons and their filing state; the statements' and the sink's settings.

A statement is inserted once per ``puid`` (a second insert returns the first). Filing
goes in batches: ``claim`` marks up to 100 due statements ``sending`` under a batch id
and a lease (the checkpoint, committed before anything is sent); the answer is recorded
by ``filed``, ``refused`` or ``release``, each only for rows still in that batch. A
process killed in between leaves the batch ``sending``: once the lease ends it is
claimed again and sent again, and the Database's "existing puid" answer files it.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hashguard.domain.audit import AuditAction
from hashguard.domain.statements import (
    FilingState,
    Statement,
    StatementOfReasons,
    reasons_from_json,
    reasons_to_json,
)
from hashguard.store._util import aware, stamp, utc
from hashguard.store.audit import append_event
from hashguard.store.schema import cases
from hashguard.store.schema import statement_settings as settings_table
from hashguard.store.schema import statements as t


class UnknownStatement(LookupError):
    def __init__(self, statement_id: int) -> None:
        super().__init__(f"no statement #{statement_id}")
        self.statement_id = statement_id


def _statement(row: Row[Any]) -> Statement:
    return Statement(
        id=row.id,
        reasons=reasons_from_json(row.reasons),
        text=row.text,
        state=FilingState(row.state),
        attempts=row.attempts,
        created_at=stamp(row.created_at),
        next_attempt_at=aware(row.next_attempt_at),
        last_error=row.last_error,
        tdb_uuid=row.tdb_uuid,
        filed_at=aware(row.filed_at),
    )


def insert_statement(
    conn: Connection, reasons: StatementOfReasons, text: str, *, at: datetime
) -> tuple[Statement, bool]:
    """Store a statement inside the caller's transaction; the stored one and whether it
    is new (a statement with the same puid is kept as it is)."""
    values = {
        "puid": reasons.puid,
        "case_id": reasons.case_id,
        "kind": str(reasons.kind),
        "reasons": reasons_to_json(reasons),
        "text": text,
        "state": str(FilingState.PENDING if reasons.kind.filed else FilingState.NOT_FILED),
        "attempts": 0,
        "created_at": utc(at),
    }
    dialect = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    added = conn.execute(dialect(t).values(**values).on_conflict_do_nothing()).rowcount
    row = conn.execute(select(t).where(t.c.puid == reasons.puid)).one()
    return _statement(row), bool(added)


def read_settings(conn: Connection, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    row = conn.execute(select(settings_table).where(settings_table.c.name == name)).first()
    if row is None:
        return {}, {}
    return dict(row.settings), dict(row.sealed)


class StatementStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- reading ---------------------------------------------------------------------

    def get(self, statement_id: int) -> Statement:
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.id == statement_id)).first()
        if row is None:
            raise UnknownStatement(statement_id)
        return _statement(row)

    def for_case(self, case_id: int) -> builtins.list[Statement]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.case_id == case_id).order_by(t.c.id)).all()
        return [_statement(r) for r in rows]

    def list(
        self, *, states: Sequence[FilingState] = (), limit: int = 1000
    ) -> builtins.list[Statement]:
        query = select(t).order_by(t.c.id).limit(limit)
        if states:
            query = query.where(t.c.state.in_([str(s) for s in states]))
        with self._engine.connect() as conn:
            return [_statement(r) for r in conn.execute(query).all()]

    def confirmed_without(self, since: datetime, *, limit: int = 100) -> builtins.list[int]:
        """Confirmed cases changed since ``since`` that have no statement: a decision
        whose statement a crash kept from being written (oldest first)."""
        has = select(t.c.id).where(t.c.case_id == cases.c.id).exists()
        query = (
            select(cases.c.id)
            .where(cases.c.state == "confirmed", cases.c.updated_at >= utc(since), ~has)
            .order_by(cases.c.id)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [int(i) for i in conn.execute(query).scalars()]

    def count_by_state(self) -> dict[FilingState, int]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.c.state, func.count()).group_by(t.c.state)).all()
        return {FilingState(state): int(n) for state, n in rows}

    # -- filing ----------------------------------------------------------------------

    def claim(
        self, *, now: datetime, lease_until: datetime, limit: int
    ) -> tuple[str, builtins.list[Statement]]:
        """Up to ``limit`` due statements (pending and due, or in a batch whose lease
        ended), oldest first, marked ``sending`` under a new batch id: the checkpoint,
        committed before the batch is sent. Two claimers never get the same row."""
        batch = uuid.uuid4().hex
        moment = utc(now)
        due = or_(
            and_(
                t.c.state == str(FilingState.PENDING),
                or_(t.c.next_attempt_at.is_(None), t.c.next_attempt_at <= moment),
            ),
            and_(t.c.state == str(FilingState.SENDING), t.c.lease_until < moment),
        )
        with self._engine.begin() as conn:
            ids = conn.execute(select(t.c.id).where(due).order_by(t.c.id).limit(limit)).scalars()
            wanted = builtins.list(ids)
            if wanted:
                # the condition again: a row another claimer took meanwhile stays theirs
                conn.execute(
                    update(t)
                    .where(t.c.id.in_(wanted), due)
                    .values(
                        state=str(FilingState.SENDING), batch=batch, lease_until=utc(lease_until)
                    )
                )
            rows = conn.execute(select(t).where(t.c.batch == batch).order_by(t.c.id)).all()
        return batch, [_statement(r) for r in rows]

    def _in_batch(self, batch: str, puids: Sequence[str]) -> Any:
        return and_(t.c.batch == batch, t.c.state == str(FilingState.SENDING), t.c.puid.in_(puids))

    def filed(
        self, batch: str, receipts: Mapping[str, str | None], *, actor: str, at: datetime
    ) -> int:
        """Mark the batch's statements named in ``receipts`` (puid -> the Database's
        uuid, None when it already held the puid) filed; audited with their puids."""
        if not receipts:
            return 0
        # one statement executed for every receipt (executemany), not one per row
        statement = (
            update(t)
            .where(
                t.c.batch == batch,
                t.c.state == str(FilingState.SENDING),
                t.c.puid == bindparam("receipt_puid"),
            )
            .values(
                state=str(FilingState.FILED),
                tdb_uuid=bindparam("receipt_uuid"),
                filed_at=utc(at),
                batch=None,
                lease_until=None,
                last_error=None,
                attempts=t.c.attempts + 1,
            )
        )
        params = [{"receipt_puid": p, "receipt_uuid": u} for p, u in receipts.items()]
        with self._engine.begin() as conn:
            done = int(conn.execute(statement, params).rowcount)
            if done:
                append_event(
                    conn,
                    actor,
                    AuditAction.STATEMENTS_FILED,
                    "statements:tdb",
                    {
                        "puids": sorted(receipts),
                        "existing": sorted(p for p, u in receipts.items() if u is None),
                    },
                    at=at,
                )
        return done

    def refused(self, batch: str, errors: Mapping[str, str], *, actor: str, at: datetime) -> int:
        """Mark the batch's statements named in ``errors`` (puid -> why) failed."""
        done = 0
        with self._engine.begin() as conn:
            for puid, error in errors.items():
                changed = conn.execute(
                    update(t)
                    .where(self._in_batch(batch, [puid]))
                    .values(
                        state=str(FilingState.FAILED),
                        batch=None,
                        lease_until=None,
                        last_error=error[:2000],
                        attempts=t.c.attempts + 1,
                    )
                ).rowcount
                if changed:
                    done += changed
                    append_event(
                        conn,
                        actor,
                        AuditAction.STATEMENT_REFUSED,
                        f"statement:{puid}",
                        {"error": error[:500]},
                        at=at,
                    )
        return done

    def release(
        self,
        batch: str,
        *,
        error: str | None,
        next_attempt_at: datetime | None,
        actor: str,
        at: datetime,
    ) -> int:
        """Put the batch's statements still ``sending`` back to pending: with ``error``
        (a failed try, counted, due at ``next_attempt_at`` and audited) or without (not
        sent at all)."""
        values: dict[str, Any] = {
            "state": str(FilingState.PENDING),
            "batch": None,
            "lease_until": None,
        }
        if error is not None:
            values |= {
                "last_error": error[:2000],
                "attempts": t.c.attempts + 1,
                "next_attempt_at": utc(next_attempt_at) if next_attempt_at else None,
            }
        with self._engine.begin() as conn:
            done = conn.execute(
                update(t)
                .where(t.c.batch == batch, t.c.state == str(FilingState.SENDING))
                .values(**values)
            ).rowcount
            if done and error is not None:
                append_event(
                    conn,
                    actor,
                    AuditAction.STATEMENT_RETRY_SCHEDULED,
                    "statements:tdb",
                    {
                        "statements": done,
                        "error": error[:500],
                        "next_attempt_at": next_attempt_at.isoformat() if next_attempt_at else None,
                    },
                    at=at,
                )
        return int(done)

    def retry_failed(self, *, actor: str, at: datetime) -> int:
        """Put every refused statement back to pending (after the cause was fixed)."""
        with self._engine.begin() as conn:
            done = conn.execute(
                update(t)
                .where(t.c.state == str(FilingState.FAILED))
                .values(state=str(FilingState.PENDING), next_attempt_at=None)
            ).rowcount
            if done:
                append_event(
                    conn,
                    actor,
                    AuditAction.STATEMENT_RETRY_SCHEDULED,
                    "statements:tdb",
                    {"statements": done, "error": None, "next_attempt_at": None},
                    at=at,
                )
        return int(done)

    # -- settings --------------------------------------------------------------------

    def settings(self, name: str) -> tuple[dict[str, Any], dict[str, str]]:
        """``name``'s stored settings and sealed credentials (base64, by key)."""
        with self._engine.connect() as conn:
            return read_settings(conn, name)

    def put_settings(
        self,
        name: str,
        settings: Mapping[str, Any],
        sealed: Mapping[str, str],
        *,
        changed: Sequence[str],
        actor: str,
        at: datetime,
    ) -> None:
        """Replace ``name``'s settings; audited by the names of what changed (never a
        credential's value)."""
        with self._engine.begin() as conn:
            updated = conn.execute(
                update(settings_table)
                .where(settings_table.c.name == name)
                .values(settings=dict(settings), sealed=dict(sealed), updated_at=utc(at))
            ).rowcount
            if not updated:
                conn.execute(
                    insert(settings_table).values(
                        name=name, settings=dict(settings), sealed=dict(sealed), updated_at=utc(at)
                    )
                )
            append_event(
                conn,
                actor,
                AuditAction.STATEMENT_SETTINGS_CHANGED,
                f"statement_settings:{name}",
                {"changed": sorted(changed)},
                at=at,
            )
