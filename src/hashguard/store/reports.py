"""Reports, their files and steps, and report-sink settings: the persisted state machine.

Every change is one transaction that writes the report row (checked against the version
the caller read, so two workers cannot both advance it), the file it concerns, one step
row (the request and response bodies sealed by the caller) and its audit event. A case
has at most one report per sink (a unique constraint): drafting twice returns the first.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    and_,
    exists,
    func,
    insert,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from hashguard.domain.actions import NewAction
from hashguard.domain.audit import AuditAction
from hashguard.domain.cases import CaseState
from hashguard.domain.evidence import EvidenceItem
from hashguard.domain.reports import (
    FileHash,
    FileState,
    Report,
    ReportFile,
    ReportFileRecord,
    ReportState,
    ReportStep,
)
from hashguard.store._util import aware, stamp, utc
from hashguard.store.actions import enqueue
from hashguard.store.audit import append_event
from hashguard.store.evidence import preserve_items
from hashguard.store.schema import (
    audit_events,
    cases,
    report_files,
    report_settings,
    report_steps,
)
from hashguard.store.schema import reports as reports_table


def file_to_json(file: ReportFile) -> dict[str, Any]:
    return {
        "evidence_id": file.evidence_id,
        "name": file.name,
        "md5": file.md5,
        "hashes": [[h.kind, h.value] for h in file.hashes],
        "viewed": file.viewed,
        "location": file.location,
        "uploaded_at": file.uploaded_at.isoformat() if file.uploaded_at else None,
    }


def file_from_json(data: Mapping[str, Any]) -> ReportFile:
    uploaded = data.get("uploaded_at")
    return ReportFile(
        evidence_id=data["evidence_id"],
        name=data["name"],
        md5=data["md5"],
        hashes=tuple(FileHash(kind=k, value=v) for k, v in data["hashes"]),
        viewed=bool(data["viewed"]),
        location=data.get("location"),
        uploaded_at=datetime.fromisoformat(uploaded) if uploaded else None,
    )


#: the step a person's retry of a failed report records (``Runner.retry``)
REOPEN_STEP = "reopen"


class UnknownReport(LookupError):
    def __init__(self, report_id: int) -> None:
        super().__init__(f"no report #{report_id}")


class StaleReport(RuntimeError):
    """The report changed since it was read (another worker advanced it)."""

    def __init__(self, report_id: int) -> None:
        super().__init__(f"report #{report_id} changed meanwhile")


class _Keep:
    pass


KEEP: Any = _Keep()


@dataclass(frozen=True, kw_only=True, slots=True)
class Sealed:
    """A step's bodies, sealed by the caller under ``part`` (``reports.documents``)."""

    part: str
    request: bytes | None = None
    response: bytes | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Preserve:
    """What a finished report sets off in the transaction that records it: the reported
    evidence kept at least ``until`` under a legal hold naming ``reason``, ``actions``
    (the ``report.filed`` webhooks) put in the outbox, one ``evidence.preserved`` event
    per item with ``details``."""

    until: datetime
    reason: str
    actions: Sequence[NewAction] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


def _unsent() -> ColumnElement[bool]:
    """A draft nothing was ever sent for (only ``hashguard reports draft`` made it): a
    person's ``submit`` (or auto_report) sends it, never a resume on its own."""
    return and_(
        reports_table.c.state == str(ReportState.DRAFT),
        reports_table.c.intent.is_(None),
        not_(
            exists().where(
                report_steps.c.report_id == reports_table.c.id, report_steps.c.step != "draft"
            )
        ),
    )


def _preserve(
    conn: Connection, report: Report, preserve: Preserve, *, at: datetime
) -> builtins.list[EvidenceItem]:
    held = preserve_items(
        conn,
        [f.evidence_id for f in report.files],
        until=preserve.until,
        reason=preserve.reason,
        at=at,
    )
    for queued in preserve.actions:
        enqueue(conn, queued, at=at)
    return held


def _preserved(
    conn: Connection, held: Sequence[EvidenceItem], preserve: Preserve, *, actor: str, at: datetime
) -> None:
    for item in held:
        details = {
            **preserve.details,
            "retain_until": item.retain_until.isoformat(),
            "hold_reason": item.hold_reason,
            "webhooks": len(preserve.actions),
        }
        append_event(conn, actor, AuditAction.EVIDENCE_PRESERVED, item.id, details, at=at)


def new_part() -> str:
    return str(uuid.uuid4())


def _report(row: Row[Any], files: Sequence[Row[Any]]) -> Report:
    return Report(
        id=row.id,
        case_id=row.case_id,
        sink=row.sink,
        environment=row.environment,
        state=ReportState(row.state),
        remote_id=row.remote_id,
        files=tuple(
            ReportFileRecord(
                seq=f.seq,
                evidence_id=f.evidence_id,
                name=f.name,
                md5=f.md5,
                state=FileState(f.state),
                file_id=f.file_id,
                file=file_from_json(f.details),
            )
            for f in files
        ),
        attempts=row.attempts,
        next_attempt_at=aware(row.next_attempt_at),
        last_error=row.last_error,
        intent=row.intent,
        receipt=tuple(row.receipt or ()),
        created_at=stamp(row.created_at),
        updated_at=stamp(row.updated_at),
        finished_at=aware(row.finished_at),
        version=row.version,
    )


def _load(conn: Connection, report_id: int) -> Report:
    row = conn.execute(select(reports_table).where(reports_table.c.id == report_id)).first()
    if row is None:
        raise UnknownReport(report_id)
    files = conn.execute(
        select(report_files)
        .where(report_files.c.report_id == report_id)
        .order_by(report_files.c.seq)
    ).all()
    return _report(row, files)


def _step(
    conn: Connection,
    report_id: int,
    *,
    at: datetime,
    actor: str,
    step: str,
    outcome: str,
    code: int | None,
    detail: str,
    state: ReportState,
    sealed: Sealed | None,
) -> None:
    conn.execute(
        insert(report_steps).values(
            report_id=report_id,
            at=at,
            actor=actor,
            step=step,
            outcome=outcome,
            code=code,
            detail=detail,
            state=str(state),
            part=sealed.part if sealed else None,
            request=sealed.request if sealed else None,
            response=sealed.response if sealed else None,
        )
    )


class ReportStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- creating and reading --

    def create(
        self,
        *,
        case_id: int,
        sink: str,
        environment: str,
        files: Sequence[ReportFile],
        data_key: bytes,
        key_for: Callable[[int], Sealed | None],
        actor: str,
        at: datetime,
    ) -> tuple[Report, bool]:
        """The case's report to ``sink``, created as a draft if it has none; and whether
        it was created now. ``key_for(report_id)`` gives the sealed draft document
        (``Sealed``) once the id is known, inside the same transaction."""
        existing = self.find(case_id, sink)
        if existing is not None:
            return existing, False
        try:
            with self._engine.begin() as conn:
                report_id = conn.execute(
                    insert(reports_table)
                    .values(
                        case_id=case_id,
                        sink=sink,
                        environment=environment,
                        state=str(ReportState.DRAFT),
                        attempts=0,
                        data_key=data_key,
                        created_at=at,
                        updated_at=at,
                        version=1,
                    )
                    .returning(reports_table.c.id)
                ).scalar_one()
                for seq, file in enumerate(files, 1):
                    conn.execute(
                        insert(report_files).values(
                            report_id=report_id,
                            seq=seq,
                            evidence_id=file.evidence_id,
                            name=file.name,
                            md5=file.md5,
                            state=str(FileState.PENDING),
                            details=file_to_json(file),
                        )
                    )
                _step(
                    conn,
                    report_id,
                    at=at,
                    actor=actor,
                    step="draft",
                    outcome="ok",
                    code=None,
                    detail=f"drafted for case #{case_id}, {len(files)} file(s), validated",
                    state=ReportState.DRAFT,
                    sealed=key_for(report_id),
                )
                append_event(
                    conn,
                    actor,
                    AuditAction.REPORT_DRAFTED,
                    f"report:{report_id}",
                    {
                        "case": case_id,
                        "sink": sink,
                        "environment": environment,
                        "files": len(files),
                    },
                    at=at,
                )
                return _load(conn, report_id), True
        except IntegrityError:
            # a concurrent draft of the same case won: that one is the report
            found = self.find(case_id, sink)
            if found is None:
                raise
            return found, False

    def get(self, report_id: int) -> Report:
        with self._engine.connect() as conn:
            return _load(conn, report_id)

    def find(self, case_id: int, sink: str) -> Report | None:
        with self._engine.connect() as conn:
            found = conn.execute(
                select(reports_table.c.id).where(
                    reports_table.c.case_id == case_id, reports_table.c.sink == sink
                )
            ).scalar()
            return None if found is None else _load(conn, found)

    def list(self, *, state: ReportState | None = None) -> builtins.list[Report]:
        query = select(reports_table.c.id).order_by(reports_table.c.id)
        if state is not None:
            query = query.where(reports_table.c.state == str(state))
        with self._engine.connect() as conn:
            return [_load(conn, i) for i in conn.execute(query).scalars()]

    def due(self, now: datetime) -> builtins.list[int]:
        """Reports not final whose next attempt is due (or never scheduled)."""
        finals = [str(s) for s in ReportState if s.final]
        query = (
            select(reports_table.c.id)
            .where(
                reports_table.c.state.not_in(finals),
                or_(
                    reports_table.c.next_attempt_at.is_(None),
                    reports_table.c.next_attempt_at <= utc(now),
                ),
            )
            .order_by(reports_table.c.id)
        )
        with self._engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def resumable(self, now: datetime, *, sink: str) -> builtins.list[int]:
        """``sink``'s reports that are ``due`` and were sent at least once (a draft
        nothing was sent for waits for a person's ``submit``)."""
        finals = [str(s) for s in ReportState if s.final]
        query = (
            select(reports_table.c.id)
            .where(
                reports_table.c.sink == sink,
                reports_table.c.state.not_in(finals),
                or_(
                    reports_table.c.next_attempt_at.is_(None),
                    reports_table.c.next_attempt_at <= utc(now),
                ),
                not_(_unsent()),
            )
            .order_by(reports_table.c.id)
        )
        with self._engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def overdue(self, since: datetime) -> builtins.list[int]:
        """Reports sent at least once, not final, that were already due at ``since``
        (their next attempt, or their last change when none is scheduled) and that no
        process holds now: nobody resumed them since."""
        finals = [str(s) for s in ReportState if s.final]
        query = (
            select(reports_table.c.id)
            .where(
                reports_table.c.state.not_in(finals),
                or_(
                    reports_table.c.next_attempt_at <= utc(since),
                    and_(
                        reports_table.c.next_attempt_at.is_(None),
                        reports_table.c.updated_at <= utc(since),
                    ),
                ),
                or_(
                    reports_table.c.leased_until.is_(None),
                    reports_table.c.leased_until <= utc(since),
                ),
                not_(_unsent()),
            )
            .order_by(reports_table.c.id)
        )
        with self._engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def count_by_state(self) -> dict[ReportState, int]:
        query = select(reports_table.c.state, func.count()).group_by(reports_table.c.state)
        with self._engine.connect() as conn:
            return {ReportState(state): int(n) for state, n in conn.execute(query).all()}

    def unreported(self, sink: str, *, limit: int = 100) -> builtins.list[int]:
        """Confirmed cases with evidence kept that have no report to ``sink`` yet, or
        only a draft nothing was sent for, oldest first (auto_report's work)."""
        reported = exists().where(
            reports_table.c.case_id == cases.c.id,
            reports_table.c.sink == sink,
            not_(_unsent()),
        )
        query = (
            select(cases.c.id)
            .where(
                cases.c.state == str(CaseState.CONFIRMED),
                cases.c.evidence_id.is_not(None),
                not_(reported),
            )
            .order_by(cases.c.id)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def last_event(self, action: AuditAction, subject: str) -> dict[str, Any] | None:
        """The details of the newest ``action`` event about ``subject``, if any."""
        query = (
            select(audit_events.c.details)
            .where(audit_events.c.action == str(action), audit_events.c.subject == subject)
            .order_by(audit_events.c.seq.desc())
            .limit(1)
        )
        with self._engine.connect() as conn:
            found = conn.execute(query).scalar()
        return None if found is None else dict(found)

    def data_key(self, report_id: int) -> bytes:
        with self._engine.connect() as conn:
            found = conn.execute(
                select(reports_table.c.data_key).where(reports_table.c.id == report_id)
            ).scalar()
        if found is None:
            raise UnknownReport(report_id)
        return bytes(found)

    def steps(self, report_id: int) -> builtins.list[ReportStep]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(report_steps)
                .where(report_steps.c.report_id == report_id)
                .order_by(report_steps.c.id)
            ).all()
        return [
            ReportStep(
                report_id=r.report_id,
                at=stamp(r.at),
                actor=r.actor,
                step=r.step,
                outcome=r.outcome,
                code=r.code,
                detail=r.detail,
                state=ReportState(r.state),
            )
            for r in rows
        ]

    def reopened_at(self, report_id: int) -> datetime | None:
        """When a person last sent the report again after it failed (its newest
        ``reopen`` step), if ever: the retries' give-up window runs from then."""
        with self._engine.connect() as conn:
            found = conn.execute(
                select(func.max(report_steps.c.at)).where(
                    report_steps.c.report_id == report_id, report_steps.c.step == REOPEN_STEP
                )
            ).scalar()
        return None if found is None else stamp(found)

    def sealed(self, report_id: int) -> builtins.list[Sealed]:
        """Every step's sealed bodies, in order (for ``reports.documents.opened``)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(report_steps.c.part, report_steps.c.request, report_steps.c.response)
                .where(report_steps.c.report_id == report_id, report_steps.c.part.is_not(None))
                .order_by(report_steps.c.id)
            ).all()
        return [
            Sealed(
                part=r.part,
                request=None if r.request is None else bytes(r.request),
                response=None if r.response is None else bytes(r.response),
            )
            for r in rows
        ]

    # -- leases --

    def claim(self, report_id: int, owner: str, *, now: datetime, until: datetime) -> bool:
        """Take the report for ``owner`` until ``until`` unless another holds it."""
        with self._engine.begin() as conn:
            taken = conn.execute(
                update(reports_table)
                .where(
                    reports_table.c.id == report_id,
                    or_(
                        reports_table.c.leased_until.is_(None),
                        reports_table.c.leased_until <= utc(now),
                        reports_table.c.lease_owner == owner,
                    ),
                )
                .values(leased_until=until, lease_owner=owner)
            ).rowcount
        return bool(taken)

    def release(self, report_id: int, owner: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(reports_table)
                .where(reports_table.c.id == report_id, reports_table.c.lease_owner == owner)
                .values(leased_until=None, lease_owner=None)
            )

    # -- changes --

    def mark_intent(self, report: Report, intent: str, *, at: datetime) -> Report:
        """Record, before a remote call, that it is being made (checked by version)."""
        with self._engine.begin() as conn:
            self._bump(conn, report, at=at, values={"intent": intent})
            return _load(conn, report.id)

    def advance(
        self,
        report: Report,
        *,
        actor: str,
        at: datetime,
        step: str,
        outcome: str,
        detail: str,
        code: int | None = None,
        sealed: Sealed | None = None,
        state: ReportState | None = None,
        remote_id: Any = KEEP,
        attempts: int | None = None,
        next_attempt_at: Any = KEEP,
        last_error: Any = KEEP,
        receipt: Sequence[str] | None = None,
        finished_at: datetime | None = None,
        file: tuple[int, FileState, str | None] | None = None,
        reset_files: bool = False,
        audit: tuple[AuditAction, Mapping[str, Any]] | None = None,
        intent: str | None = None,
        preserve: Preserve | None = None,
    ) -> Report:
        """One step, all or nothing: the report row (its ``intent`` cleared, or set to
        ``intent``), a file's
        state, the step row and the audit event; with ``preserve``, the reported
        evidence held and the webhooks queued too. ``StaleReport`` when ``report`` is
        not the current version."""
        values: dict[str, Any] = {"intent": intent}
        if state is not None:
            values["state"] = str(state)
        if remote_id is not KEEP:
            values["remote_id"] = remote_id
        if attempts is not None:
            values["attempts"] = attempts
        if next_attempt_at is not KEEP:
            values["next_attempt_at"] = next_attempt_at
        if last_error is not KEEP:
            values["last_error"] = last_error
        if receipt is not None:
            values["receipt"] = list(receipt)
        if finished_at is not None:
            values["finished_at"] = finished_at
        with self._engine.begin() as conn:
            self._bump(conn, report, at=at, values=values)
            if reset_files:
                conn.execute(
                    update(report_files)
                    .where(report_files.c.report_id == report.id)
                    .values(state=str(FileState.PENDING), file_id=None)
                )
            if file is not None:
                seq, file_state, file_id = file
                conn.execute(
                    update(report_files)
                    .where(report_files.c.report_id == report.id, report_files.c.seq == seq)
                    .values(state=str(file_state), file_id=file_id)
                )
            _step(
                conn,
                report.id,
                at=at,
                actor=actor,
                step=step,
                outcome=outcome,
                code=code,
                detail=detail,
                state=state or report.state,
                sealed=sealed,
            )
            held = _preserve(conn, report, preserve, at=at) if preserve else []
            # audit events last: appending holds the log's lock until commit
            if audit is not None:
                action, details = audit
                append_event(conn, actor, action, f"report:{report.id}", dict(details), at=at)
            if preserve is not None:
                _preserved(conn, held, preserve, actor=actor, at=at)
            return _load(conn, report.id)

    @staticmethod
    def _bump(conn: Connection, report: Report, *, at: datetime, values: dict[str, Any]) -> None:
        changed = conn.execute(
            update(reports_table)
            .where(reports_table.c.id == report.id, reports_table.c.version == report.version)
            .values(**values, updated_at=at, version=report.version + 1)
        ).rowcount
        if not changed:
            raise StaleReport(report.id)

    # -- what the audit trail says --

    def viewed(self, case_id: int, evidence_id: str | None) -> bool:
        """Whether a person saw the case's content: a reveal in the review UI
        (``content.revealed`` of the case) or the evidence opened by someone other than
        hashguard itself (``evidence.revealed`` by an actor not ``system:``)."""
        shown = and_(
            audit_events.c.action == str(AuditAction.CONTENT_REVEALED),
            audit_events.c.subject == f"case:{case_id}",
        )
        conditions = [shown]
        if evidence_id is not None:
            conditions.append(
                and_(
                    audit_events.c.action == str(AuditAction.EVIDENCE_REVEALED),
                    audit_events.c.subject == evidence_id,
                    audit_events.c.actor.not_like("system:%"),
                )
            )
        with self._engine.connect() as conn:
            return bool(conn.execute(select(exists().where(or_(*conditions)))).scalar())

    # -- sink settings --

    def settings(self, sink: str) -> tuple[dict[str, Any], dict[str, str]]:
        """``sink``'s stored settings and its sealed credentials (base64, by key)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(report_settings).where(report_settings.c.sink == sink)
            ).first()
        if row is None:
            return {}, {}
        return dict(row.settings), dict(row.sealed)

    def put_settings(
        self,
        sink: str,
        settings: Mapping[str, Any],
        sealed: Mapping[str, str],
        *,
        changed: Sequence[str],
        actor: str,
        at: datetime,
    ) -> None:
        """Replace ``sink``'s settings; audited by the names of what changed (never a
        credential's value)."""
        with self._engine.begin() as conn:
            updated = conn.execute(
                update(report_settings)
                .where(report_settings.c.sink == sink)
                .values(settings=dict(settings), sealed=dict(sealed), updated_at=at)
            ).rowcount
            if not updated:
                conn.execute(
                    insert(report_settings).values(
                        sink=sink, settings=dict(settings), sealed=dict(sealed), updated_at=at
                    )
                )
            append_event(
                conn,
                actor,
                AuditAction.REPORT_SETTINGS_CHANGED,
                f"report_sink:{sink}",
                {"changed": sorted(changed)},
                at=at,
            )
