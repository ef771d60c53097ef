"""Review cases and their history: one case per content item, changed only at a known version."""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hashguard.domain.actions import NewAction
from hashguard.domain.cases import (
    Case,
    CaseEvent,
    CaseEventKind,
    CaseSource,
    CaseState,
    ContentRef,
)
from hashguard.domain.matches import Match, match_from_json, match_to_json
from hashguard.domain.policy import Decision, decision_from_json, decision_to_json
from hashguard.domain.remote import RemoteResult, remote_from_json, remote_to_json
from hashguard.domain.signals import FileSignals, signals_from_json, signals_to_json
from hashguard.store._util import aware, now, utc
from hashguard.store.actions import enqueue
from hashguard.store.schema import case_events, cases


class UnknownCase(LookupError):
    def __init__(self, case_id: int) -> None:
        super().__init__(f"no case #{case_id}")
        self.case_id = case_id


class StaleCase(RuntimeError):
    """The case changed since the caller read it: read it again and decide again."""

    def __init__(self, case_id: int, expected: int, actual: int) -> None:
        super().__init__(
            f"case #{case_id} changed meanwhile (version {actual}, not {expected}): "
            "look at it again before deciding"
        )
        self.case_id = case_id
        self.expected = expected
        self.actual = actual


def _gains_reference(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """A sighting of the same content that brings reference PDQ hashes the case lacks."""
    return (
        old is not None
        and new is not None
        and not old.get("pdq_reference")
        and bool(new.get("pdq_reference"))
        and old.get("sha256") == new.get("sha256")
    )


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _union(old: Sequence[Any], new: Sequence[Any]) -> list[Any]:
    """``old`` followed by the items of ``new`` it does not hold yet (JSON values)."""
    seen = {_key(item) for item in old}
    merged = list(old)
    for item in new:
        if _key(item) not in seen:
            seen.add(_key(item))
            merged.append(item)
    return merged


def _case(row: Row[Any]) -> Case:
    created, updated = aware(row.created_at), aware(row.updated_at)
    assert created is not None
    assert updated is not None
    return Case(
        id=row.id,
        content_key=row.content_key,
        content=ContentRef(content_id=row.content_id, uploader_id=row.uploader_id, url=row.url),
        sources=tuple(CaseSource.from_json(s) for s in row.sources),
        signals=signals_from_json(row.signals) if row.signals is not None else None,
        matches=tuple(match_from_json(m) for m in row.matches),
        remote=tuple(remote_from_json(r) for r in row.remote),
        decision=decision_from_json(row.decision),
        state=CaseState(row.state),
        assignee=row.assignee,
        confirmers=tuple(row.confirmers),
        created_at=created,
        updated_at=updated,
        version=row.version,
        evidence_id=row.evidence_id,
    )


def _event(row: Row[Any]) -> CaseEvent:
    at = aware(row.at)
    assert at is not None
    return CaseEvent(
        case_id=row.case_id,
        at=at,
        actor=row.actor,
        kind=CaseEventKind(row.kind),
        from_state=CaseState(row.from_state) if row.from_state else None,
        to_state=CaseState(row.to_state) if row.to_state else None,
        reason=row.reason,
        details=row.details,
    )


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


#: ``transition``'s "leave the assignee as it is" (``None`` unassigns).
KEEP: Any = _Keep()


class CaseStore:
    """Cases and their history. The workflow's rules (which transitions, who may
    confirm) live in ``hashguard.review``; this store keeps one case per content item
    and refuses any change made against a version that is no longer current."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def open_or_update(
        self,
        *,
        content_key: str,
        source: CaseSource,
        signals: FileSignals | None,
        matches: Sequence[Match],
        remote: Sequence[RemoteResult],
        decision: Decision,
        actor: str,
        content: ContentRef | None = None,
        evidence_id: str | None = None,
    ) -> tuple[Case, CaseEventKind | None]:
        """``open_or_update`` in a transaction of its own."""
        with self._engine.begin() as conn:
            return open_or_update(
                conn,
                content_key=content_key,
                source=source,
                signals=signals,
                matches=matches,
                remote=remote,
                decision=decision,
                actor=actor,
                content=content,
                evidence_id=evidence_id,
            )

    def get(self, case_id: int) -> Case:
        with self._engine.connect() as conn:
            row = conn.execute(select(cases).where(cases.c.id == case_id)).first()
        if row is None:
            raise UnknownCase(case_id)
        return _case(row)

    def find(self, content_key: str) -> Case | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(cases).where(cases.c.content_key == content_key)).first()
        return None if row is None else _case(row)

    def list(
        self,
        *,
        state: CaseState | None = None,
        assignee: str | None = None,
        limit: int = 100,
        newest_first: bool = False,
        after_id: int | None = None,
    ) -> list[Case]:
        """Cases, oldest first (or newest first); with ``after_id``, only those that come
        after that case in this order (a paging cursor)."""
        order = cases.c.id.desc() if newest_first else cases.c.id
        query = select(cases).order_by(order).limit(limit)
        if after_id is not None:
            query = query.where(cases.c.id < after_id if newest_first else cases.c.id > after_id)
        if state is not None:
            query = query.where(cases.c.state == str(state))
        if assignee is not None:
            query = query.where(cases.c.assignee == assignee)
        with self._engine.connect() as conn:
            return [_case(row) for row in conn.execute(query)]

    def transition(
        self,
        case_id: int,
        *,
        expected_version: int,
        actor: str,
        kind: CaseEventKind,
        to_state: CaseState | None = None,
        reason: str | None = None,
        assignee: str | None = KEEP,
        confirmers: Sequence[str] | None = None,
        details: Mapping[str, Any] | None = None,
        actions: Sequence[NewAction] = (),
        at: datetime | None = None,
    ) -> Case:
        """Change the case (state, assignee, confirmers), record the event and put
        ``actions`` (the change's webhooks) in the outbox, in one transaction, only if
        the case is still at ``expected_version``; else raise ``StaleCase``.
        ``to_state`` ``None`` keeps the state. ``at`` is the caller's clock (the case's
        ``updated_at`` and the event's time; the wall clock when ``None``)."""
        moment = utc(at) if at is not None else now()
        with self._engine.begin() as conn:
            row = conn.execute(
                select(cases.c.version, cases.c.state).where(cases.c.id == case_id)
            ).first()
            if row is None:
                raise UnknownCase(case_id)
            values: dict[str, Any] = {"updated_at": moment, "version": expected_version + 1}
            if to_state is not None:
                values["state"] = str(to_state)
            if assignee is not KEEP:
                values["assignee"] = assignee
            if confirmers is not None:
                values["confirmers"] = list(confirmers)
            done = conn.execute(
                update(cases)
                .where(cases.c.id == case_id, cases.c.version == expected_version)
                .values(**values)
            )
            if done.rowcount != 1:
                raise StaleCase(case_id, expected_version, row.version)
            _append_event(
                conn,
                case_id,
                actor=actor,
                kind=kind,
                from_state=CaseState(row.state) if to_state is not None else None,
                to_state=to_state,
                reason=reason,
                details=dict(details or {}),
                at=moment,
            )
            for action in actions:
                enqueue(conn, action)
        return self.get(case_id)

    def history(self, case_id: int) -> builtins.list[CaseEvent]:
        with self._engine.connect() as conn:
            rows = list(
                conn.execute(
                    select(case_events)
                    .where(case_events.c.case_id == case_id)
                    .order_by(case_events.c.id)
                )
            )
        return [_event(row) for row in rows]


def open_or_update(
    conn: Connection,
    *,
    content_key: str,
    source: CaseSource,
    signals: FileSignals | None,
    matches: Sequence[Match],
    remote: Sequence[RemoteResult],
    decision: Decision,
    actor: str,
    content: ContentRef | None = None,
    evidence_id: str | None = None,
) -> tuple[Case, CaseEventKind | None]:
    """The case of ``content_key``, opened (``OPENED``) or with this sighting's matches
    added to it (``SEEN_AGAIN``); ``None`` when it already held them all. Runs inside the
    caller's transaction (a sighting commits with whatever else the caller writes).

    Two writers opening the same content at once: the insert does nothing on the
    unique ``content_key`` (PostgreSQL waits for the other transaction first; SQLite
    serialises writers) and the sighting is added to the case the other one opened.
    """
    content = content or ContentRef()
    values = {
        "sources": [source.as_json()],
        "signals": signals_to_json(signals) if signals else None,
        "matches": [match_to_json(m) for m in matches],
        "remote": [remote_to_json(r) for r in remote],
        "decision": decision_to_json(decision),
        "content_id": content.content_id,
        "uploader_id": content.uploader_id,
        "url": content.url,
        "evidence_id": evidence_id,
    }
    locked = select(cases).where(cases.c.content_key == content_key).with_for_update()
    row = conn.execute(locked).first()
    if row is None:
        stamp = now()
        dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        case_id = conn.execute(
            dialect_insert(cases)
            .values(
                content_key=content_key,
                state=str(CaseState.OPEN),
                confirmers=[],
                created_at=stamp,
                updated_at=stamp,
                version=1,
                **values,
            )
            .on_conflict_do_nothing(index_elements=[cases.c.content_key])
            .returning(cases.c.id)
        ).scalar()
        if case_id is not None:
            _append_event(
                conn,
                case_id,
                actor=actor,
                kind=CaseEventKind.OPENED,
                from_state=None,
                to_state=CaseState.OPEN,
                reason=decision.rule,
                details={"source": source.as_json()},
            )
            fresh = conn.execute(select(cases).where(cases.c.id == case_id)).one()
            return _case(fresh), CaseEventKind.OPENED
        row = conn.execute(locked).one()  # opened by someone else meanwhile: add to theirs
    return _add_sighting(conn, row, values, decision, actor)


def _add_sighting(
    conn: Connection,
    row: Row[Any],
    values: dict[str, Any],
    decision: Decision,
    actor: str,
) -> tuple[Case, CaseEventKind | None]:
    old = decision_from_json(row.decision)
    changes: dict[str, Any] = {
        "sources": _union(row.sources, values["sources"]),
        "matches": _union(row.matches, values["matches"]),
        "remote": _union(row.remote, values["remote"]),
    }
    if decision.action.strength > old.action.strength:
        changes["decision"] = values["decision"]
    for name in ("signals", "content_id", "uploader_id", "url", "evidence_id"):
        if getattr(row, name) is None and values[name] is not None:
            changes[name] = values[name]
    if _gains_reference(row.signals, values["signals"]):
        changes["signals"] = values["signals"]
    changed = {k: v for k, v in changes.items() if _key(v) != _key(getattr(row, k))}
    if not changed:
        return _case(row), None
    conn.execute(
        update(cases)
        .where(cases.c.id == row.id)
        .values(**changed, updated_at=now(), version=row.version + 1)
    )
    _append_event(
        conn,
        row.id,
        actor=actor,
        kind=CaseEventKind.SEEN_AGAIN,
        from_state=None,
        to_state=None,
        reason=decision.rule,
        details={"source": values["sources"][0], "changed": sorted(changed)},
    )
    fresh = conn.execute(select(cases).where(cases.c.id == row.id)).one()
    return _case(fresh), CaseEventKind.SEEN_AGAIN


def _append_event(
    conn: Connection,
    case_id: int,
    *,
    actor: str,
    kind: CaseEventKind,
    from_state: CaseState | None,
    to_state: CaseState | None,
    reason: str | None,
    details: Mapping[str, Any],
    at: datetime | None = None,
) -> None:
    conn.execute(
        insert(case_events).values(
            case_id=case_id,
            at=at if at is not None else now(),
            actor=actor,
            kind=str(kind),
            from_state=str(from_state) if from_state else None,
            to_state=str(to_state) if to_state else None,
            reason=reason,
            details=dict(details),
        )
    )
