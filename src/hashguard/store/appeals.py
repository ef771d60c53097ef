"""Appeals (DSA Art. 20): stored once per platform reference, decided once."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from hashguard.domain.appeals import Appeal, AppealState, NewAppeal, Restoration
from hashguard.store._util import aware, stamp, utc
from hashguard.store.schema import appeals as t
from hashguard.store.schema import statements


class UnknownAppeal(LookupError):
    def __init__(self, appeal_id: int) -> None:
        super().__init__(f"no appeal #{appeal_id}")
        self.appeal_id = appeal_id


class StatementAppealed(RuntimeError):
    """The statement already has an appeal under another reference (one per statement),
    or a concurrent request stored the same reference first: nothing was stored."""

    def __init__(self, appeal: Appeal | None) -> None:
        super().__init__(
            f"the statement was already appealed (appeal #{appeal.id})"
            if appeal is not None
            else "an appeal of this statement or with this reference was stored meanwhile"
        )
        self.appeal = appeal


class AppealAlreadyDecided(RuntimeError):
    """The appeal was decided meanwhile (by someone else): nothing changed."""

    def __init__(self, appeal: Appeal) -> None:
        super().__init__(f"appeal #{appeal.id} is already {appeal.state}")
        self.appeal = appeal


def _query() -> Any:
    return select(t, statements.c.puid.label("statement_puid")).join(
        statements, statements.c.id == t.c.statement_id
    )


def _appeal(row: Row[Any]) -> Appeal:
    return Appeal(
        id=row.id,
        case_id=row.case_id,
        statement_id=row.statement_id,
        statement_puid=row.statement_puid,
        reference=row.reference,
        explanation=row.explanation,
        state=AppealState(row.state),
        received_at=stamp(row.received_at),
        received_by=row.received_by,
        decided_at=aware(row.decided_at),
        decided_by=row.decided_by,
        reason=row.reason,
        decision_statement_id=row.decision_statement_id,
        restoration=Restoration(row.restoration) if row.restoration else None,
        restoration_notes=tuple(row.restoration_notes or ()),
        restore_attempts=int(row.restore_attempts or 0),
        restore_after=aware(row.restore_after),
    )


class AppealStore:
    """Appeals. The rules (the six months, who may decide) live in
    ``hashguard.review.appeals``; this store keeps one appeal per reference and decides
    an appeal only while it is open."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, appeal_id: int) -> Appeal:
        with self._engine.connect() as conn:
            row = conn.execute(_query().where(t.c.id == appeal_id)).first()
        if row is None:
            raise UnknownAppeal(appeal_id)
        return _appeal(row)

    def find(self, reference: str) -> Appeal | None:
        with self._engine.connect() as conn:
            row = conn.execute(_query().where(t.c.reference == reference)).first()
        return None if row is None else _appeal(row)

    def for_case(self, case_id: int) -> builtins.list[Appeal]:
        with self._engine.connect() as conn:
            rows = conn.execute(_query().where(t.c.case_id == case_id).order_by(t.c.id)).all()
        return [_appeal(r) for r in rows]

    def list(
        self, *, states: Sequence[AppealState] = (), limit: int = 1000
    ) -> builtins.list[Appeal]:
        """Appeals, oldest first (optionally only those in ``states``)."""
        query = _query().order_by(t.c.id).limit(limit)
        if states:
            query = query.where(t.c.state.in_([str(s) for s in states]))
        with self._engine.connect() as conn:
            return [_appeal(r) for r in conn.execute(query).all()]

    def add(
        self, appeal: NewAppeal, *, statement_id: int, received_by: str, at: datetime
    ) -> tuple[Appeal, bool]:
        """Store an open appeal; the stored one and whether it is new (an appeal with
        the same reference is returned as it is: the caller compares it).
        ``StatementAppealed`` when the statement has an appeal under another reference
        (the unique constraint decides between concurrent writers)."""
        with self._engine.begin() as conn:
            found = conn.execute(_query().where(t.c.reference == appeal.reference)).first()
            if found is not None:
                return _appeal(found), False
            other = conn.execute(_query().where(t.c.statement_id == statement_id)).first()
            if other is not None:
                raise StatementAppealed(_appeal(other))
            try:
                appeal_id = self._insert(conn, appeal, statement_id, received_by, at)
            except IntegrityError:
                raise StatementAppealed(None) from None
            row = conn.execute(_query().where(t.c.id == appeal_id)).one()
        return _appeal(row), True

    @staticmethod
    def _insert(
        conn: Connection, appeal: NewAppeal, statement_id: int, received_by: str, at: datetime
    ) -> int:
        return int(
            conn.execute(
                insert(t)
                .values(
                    reference=appeal.reference,
                    case_id=appeal.case_id,
                    statement_id=statement_id,
                    explanation=appeal.explanation,
                    state=str(AppealState.OPEN),
                    received_at=utc(at),
                    received_by=received_by,
                    restoration_notes=[],
                )
                .returning(t.c.id)
            ).scalar_one()
        )

    def decide(
        self,
        appeal_id: int,
        *,
        state: AppealState,
        decided_by: str,
        reason: str,
        at: datetime,
        decision_statement_id: int | None,
        restoration: Restoration | None,
    ) -> Appeal:
        """Record the outcome of an open appeal; ``AppealAlreadyDecided`` if it is not
        open any more (nothing changes then)."""
        with self._engine.begin() as conn:
            done = conn.execute(
                update(t)
                .where(t.c.id == appeal_id, t.c.state == str(AppealState.OPEN))
                .values(
                    state=str(state),
                    decided_by=decided_by,
                    decided_at=utc(at),
                    reason=reason,
                    decision_statement_id=decision_statement_id,
                    restoration=str(restoration) if restoration else None,
                )
            ).rowcount
        appeal = self.get(appeal_id)
        if not done:
            raise AppealAlreadyDecided(appeal)
        return appeal

    def set_restoration(
        self,
        appeal_id: int,
        restoration: Restoration,
        notes: Sequence[str],
        *,
        retry_after: datetime | None = None,
    ) -> Appeal:
        """Record a restoration's outcome: one more attempt, and when the restores job
        tries again (``retry_after``; None: not automatically)."""
        with self._engine.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.id == appeal_id)
                .values(
                    restoration=str(restoration),
                    restoration_notes=list(notes),
                    restore_attempts=t.c.restore_attempts + 1,
                    restore_after=utc(retry_after) if retry_after is not None else None,
                )
            )
        return self.get(appeal_id)

    def restores_due(self, at: datetime, *, limit: int = 100) -> builtins.list[Appeal]:
        """Reversed appeals whose restoration is ``pending`` or ``failed`` and due at
        ``at`` (never tried: due at once; given up, ``restore_after`` None after a try:
        never), oldest first."""
        query = (
            _query()
            .where(
                t.c.state == str(AppealState.REVERSED),
                t.c.restoration.in_([str(Restoration.PENDING), str(Restoration.FAILED)]),
                or_(
                    and_(t.c.restore_after.is_(None), t.c.restore_attempts == 0),
                    t.c.restore_after <= utc(at),
                ),
            )
            .order_by(t.c.id)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [_appeal(row) for row in conn.execute(query)]
