"""What each audit event counts: the mapping from the audit log to the statistics rollups.

Every change a person, a token or the pipeline makes is appended to the audit log in
the transaction that makes it (``Store.atomic``, ``Store.transaction``), so
``append_event`` is the one place where every counted event passes with its
transaction open: it adds the event's counts there (``tally_event``). The same
function replayed over the log recomputes the numbers (``hashguard stats verify``);
it reads only the event itself and facts that never change once written (when a case
was opened, when a notice was received, when a case was confirmed, a referral's
hotline), so a replay gives what the recording gave. The audit log is never pruned,
so these numbers stay recomputable for ever.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from hashguard.domain.audit import AuditAction
from hashguard.domain.stats import Metric, Timing
from hashguard.store._util import aware
from hashguard.store.schema import case_events, cases, notices, referral_tasks, reports
from hashguard.store.stats import Tally, day_of

#: the audit actions that count something (others are skipped without a look)
COUNTED = frozenset(
    {
        AuditAction.SCAN_DECISION,
        AuditAction.CASE_OPENED,
        AuditAction.CASE_CONFIRMED,
        AuditAction.CASE_FALSE_POSITIVE,
        AuditAction.CASE_ESCALATED,
        AuditAction.REPORT_SUBMITTED,
        AuditAction.REPORT_FINISHED,
        AuditAction.REPORT_FAILED,
        AuditAction.STATEMENT_ISSUED,
        AuditAction.STATEMENTS_FILED,
        AuditAction.STATEMENT_REFUSED,
        AuditAction.NOTICE_RECEIVED,
        AuditAction.NOTICE_DECIDED,
        AuditAction.REFERRAL_DONE,
        AuditAction.CONTENT_QUARANTINED,
        AuditAction.APPEAL_RECEIVED,
        AuditAction.APPEAL_DECIDED,
        AuditAction.LOOKUP_MATCHED,
    }
)


def _id(subject: str | None, prefix: str) -> int | None:
    if subject is None or not subject.startswith(prefix + ":"):
        return None
    try:
        return int(subject[len(prefix) + 1 :])
    except ValueError:
        return None


def _way(details: Mapping[str, Any]) -> str:
    source = details.get("source")
    return str(source.get("kind", "")) if isinstance(source, Mapping) else ""


def _seconds(start: datetime | None, end: datetime) -> float | None:
    start = aware(start)
    return None if start is None else (end - start).total_seconds()


def _case_opened_at(conn: Connection, case_id: int | None) -> datetime | None:
    if case_id is None:
        return None
    return conn.execute(select(cases.c.created_at).where(cases.c.id == case_id)).scalar()


def _confirmed_at(conn: Connection, case_id: int) -> datetime | None:
    """When the case became ``confirmed`` (its final confirmation)."""
    return conn.execute(
        select(case_events.c.at)
        .where(
            case_events.c.case_id == case_id,
            case_events.c.kind == "confirmed",
            case_events.c.to_state == "confirmed",
        )
        .order_by(case_events.c.id)
        .limit(1)
    ).scalar()


def tally_event(  # noqa: PLR0912, PLR0915 (one branch per counted action, read top to bottom)
    conn: Connection,
    tally: Tally,
    action: str,
    subject: str | None,
    details: Mapping[str, Any],
    at: datetime,
) -> None:
    """Add what the audit event counts to ``tally`` (nothing for most actions)."""
    if action not in COUNTED:
        return
    day = day_of(at)
    kind = AuditAction(action)
    if kind is AuditAction.SCAN_DECISION:
        decision = "shadow" if details.get("shadow") else str(details.get("decided", ""))
        tally.count(day, Metric.DECISIONS, way=_way(details), decision=decision)
    elif kind is AuditAction.LOOKUP_MATCHED:
        # a tenant's answered lookup call that matched: [source, category, hashes]
        for source, category, n in details.get("by_source") or ():
            tally.count(
                day,
                Metric.LOOKUP_MATCHES,
                int(n),
                tenant=str(details.get("tenant") or ""),
                source=str(source),
                category=str(category),
            )
    elif kind is AuditAction.CASE_OPENED:
        tally.count(
            day,
            Metric.CASES_OPENED,
            way=_way(details),
            bank=str(details.get("bank") or ""),
            band=str(details.get("band") or ""),
        )
    elif kind in (
        AuditAction.CASE_CONFIRMED,
        AuditAction.CASE_FALSE_POSITIVE,
        AuditAction.CASE_ESCALATED,
    ):
        if kind is AuditAction.CASE_CONFIRMED and details.get("to_state") != "confirmed":
            return  # the first of two confirmations: not yet a decision
        outcome = {
            AuditAction.CASE_CONFIRMED: "confirmed",
            AuditAction.CASE_FALSE_POSITIVE: "false_positive",
            AuditAction.CASE_ESCALATED: "escalated",
        }[kind]
        tally.count(
            day,
            Metric.CASES_DECIDED,
            outcome=outcome,
            bank=str(details.get("bank") or ""),
            band=str(details.get("band") or ""),
        )
        if kind is not AuditAction.CASE_ESCALATED:
            taken = _seconds(_case_opened_at(conn, _id(subject, "case")), at)
            if taken is not None:
                tally.time(day, Timing.MATCH_TO_REVIEW, taken)
    elif kind is AuditAction.REPORT_SUBMITTED:
        tally.count(day, Metric.REPORTS, state="filed")
        report_id = _id(subject, "report")
        case_id = (
            conn.execute(select(reports.c.case_id).where(reports.c.id == report_id)).scalar()
            if report_id is not None
            else None
        )
        if case_id is not None:
            taken = _seconds(_confirmed_at(conn, case_id), at)
            if taken is not None:
                tally.time(day, Timing.CONFIRMATION_TO_REPORT, taken)
    elif kind is AuditAction.REPORT_FINISHED:
        tally.count(day, Metric.REPORTS, state="acknowledged")
    elif kind is AuditAction.REPORT_FAILED:
        tally.count(day, Metric.REPORTS, state="failed")
    elif kind is AuditAction.STATEMENT_ISSUED:
        automated = str(details.get("automated_decision") or "")
        tally.count(
            day,
            Metric.STATEMENTS,
            source_type=str(details.get("source_type") or ""),
            automated="no" if automated in ("", "AUTOMATED_DECISION_NOT_AUTOMATED") else "yes",
            kind=str(details.get("kind") or ""),
        )
    elif kind is AuditAction.STATEMENTS_FILED:
        tally.count(day, Metric.STATEMENTS_FILED, len(details.get("puids") or ()), state="filed")
    elif kind is AuditAction.STATEMENT_REFUSED:
        tally.count(day, Metric.STATEMENTS_FILED, state="failed")
    elif kind is AuditAction.NOTICE_RECEIVED:
        tally.count(
            day,
            Metric.NOTICES,
            notifier_kind=str(details.get("notifier_kind") or ""),
            category=str(details.get("category") or ""),
            channel=str(details.get("channel") or ""),
        )
    elif kind is AuditAction.NOTICE_DECIDED:
        notice_id = _id(subject, "notice")
        row = (
            conn.execute(
                select(notices.c.notifier, notices.c.received_at).where(notices.c.id == notice_id)
            ).first()
            if notice_id is not None
            else None
        )
        notifier = row.notifier if row is not None and isinstance(row.notifier, dict) else {}
        tally.count(
            day,
            Metric.NOTICES_DECIDED,
            notifier_kind=str(notifier.get("kind") or ""),
            outcome=str(details.get("outcome") or ""),
        )
        if row is not None:
            taken = _seconds(row.received_at, at)
            if taken is not None:
                tally.time(day, Timing.NOTICE_TO_DECISION, taken)
    elif kind is AuditAction.REFERRAL_DONE:
        task_id = _id(subject, "referral")
        hotline = (
            conn.execute(
                select(referral_tasks.c.hotline).where(referral_tasks.c.id == task_id)
            ).scalar()
            if task_id is not None
            else None
        )
        tally.count(day, Metric.REFERRALS, hotline=str(hotline or ""))
    elif kind is AuditAction.CONTENT_QUARANTINED:
        tally.count(day, Metric.REMOVALS, way="", how="quarantine")
    elif kind in (AuditAction.APPEAL_RECEIVED, AuditAction.APPEAL_DECIDED):
        # received, then upheld or reversed (``review/appeals.py`` names the state)
        tally.count(day, Metric.APPEALS, state=str(details.get("state") or ""))
        if kind is AuditAction.APPEAL_DECIDED:
            received, decided = details.get("received_at"), details.get("decided_at")
            if isinstance(received, str):
                end = datetime.fromisoformat(decided) if isinstance(decided, str) else at
                taken = _seconds(datetime.fromisoformat(received), end)
                if taken is not None:
                    tally.time(day, Timing.APPEAL_TO_DECISION, taken)
