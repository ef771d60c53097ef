"""Appeals (DSA Art. 20): the uploader, through the platform, contests a restriction
explained by a statement of reasons; a person who did not take the first decision
upholds or reverses it.

The rules, enforced here whichever way (API, CLI, UI) a step comes in:

* an appeal names the case and the statement of reasons it contests (a restriction:
  ``automated`` or ``confirmed``), and comes within ``APPEAL_WINDOW`` of that statement
  (``AppealTooLate`` otherwise; the clock is the caller's ``at``);
* one appeal per statement; the platform's reference is the idempotency key (the same
  appeal sent again is the first one; another appeal under a used reference is refused);
* whoever took part in the first decision (confirmed, marked a false positive or
  escalated the case) never decides the appeal, whatever their role (``SamePerson``);
* ``uphold`` keeps the restriction; ``reverse`` makes the case a false positive (its
  hashes go to the allow bank, or the restored content would be restricted again on its
  next scan or upload) and puts back the files a scan quarantined and the objects
  quarantined in object storage.

Each change, its case event, its statement of reasons, its ``appeal.decided`` webhook
and its audit event (``appeal.received``, ``appeal.decided``, each with ``state`` as
``Metric.APPEALS`` counts it) commit together (``Store.atomic``), with the cancellation
of the content's quarantines still pending (files and objects). The files are put back
after that commit (a move cannot join a transaction), and each quarantined object's
restore is queued in the outbox then (the dispatcher puts it back); what happened is
the appeal's ``restoration`` (``pending`` until every file and object is back,
``restored``, ``failed`` with why, ``none``), revisited by the restores job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hashguard.actions.outbox import webhook_actions
from hashguard.audit import record
from hashguard.domain.actions import EventType, WebhookEndpoint
from hashguard.domain.appeals import (
    MAX_EXPLANATION,
    REFERENCE_PATTERN,
    Appeal,
    AppealState,
    NewAppeal,
    Outcome,
    Restoration,
    deadline,
)
from hashguard.domain.audit import AuditAction
from hashguard.domain.backoff import Backoff
from hashguard.domain.cases import Case, CaseEventKind, CaseState
from hashguard.domain.exchanges import FeedbackVerdict
from hashguard.domain.statements import Statement, StatementKind
from hashguard.domain.text import unstorable
from hashguard.review.cases import (
    ReasonRequired,
    ReviewError,
    _allow_bank,
    _allow_entries,
    reviewer_of,
)
from hashguard.review.effects import (
    PlannedFeedback,
    case_feedback,
    case_webhooks,
    feedback_audit,
)
from hashguard.review.restoring import cancel_quarantines, holds_content, put_back
from hashguard.statements.appeal import appeal_reasons, appeal_text
from hashguard.statements.reasons import notice_sources
from hashguard.statements.service import STATEMENTS, _answer_notifiers, config_of
from hashguard.store import Store
from hashguard.store.appeals import AppealAlreadyDecided, StatementAppealed, UnknownAppeal

__all__ = [
    "AppealAlreadyDecided",
    "AppealClosed",
    "AppealConflict",
    "AppealError",
    "AppealTooLate",
    "Decided",
    "InvalidAppeal",
    "NotContestable",
    "SamePerson",
    "UnknownAppeal",
    "UnknownStatement",
    "decide",
    "first_deciders",
    "receive",
    "restore_content",
    "restore_due",
]

#: the statements an uploader contests: those that restrict (an appeal's upheld decision
#: is the complaint's end; the uploader goes on to Art. 21 or a court)
CONTESTABLE = frozenset({StatementKind.AUTOMATED, StatementKind.CONFIRMED})
#: the case events whose actors took part in the first decision
_DECIDING = frozenset(
    {CaseEventKind.CONFIRMED, CaseEventKind.FALSE_POSITIVE, CaseEventKind.ESCALATED}
)


class AppealError(ValueError):
    """An appeal, or a step on one, that the rules refuse."""


class InvalidAppeal(AppealError):
    """The appeal as sent cannot be taken (a malformed reference, no explanation)."""


class AppealTooLate(AppealError):
    def __init__(self, statement: Statement, at: datetime) -> None:
        end = deadline(statement.reasons.decided_at)
        super().__init__(
            f"the appeal against {statement.puid} came on {at.date().isoformat()}: the "
            f"six months to contest it ended on {end.date().isoformat()}"
        )


class UnknownStatement(AppealError, LookupError):
    def __init__(self, case_id: int, puid: str) -> None:
        super().__init__(f"case #{case_id} has no statement of reasons {puid!r}")


class NotContestable(AppealError):
    """The statement restricts nothing (any more): there is nothing to contest."""


class AppealConflict(AppealError):
    """The reference names another appeal, or the statement was already appealed."""


class AppealClosed(AppealError):
    def __init__(self, appeal: Appeal) -> None:
        super().__init__(f"appeal #{appeal.id} is already {appeal.state}")
        self.appeal = appeal


class SamePerson(ReviewError):
    def __init__(self, appeal: Appeal, person: str) -> None:
        super().__init__(
            f"{person} took part in the decision that appeal #{appeal.id} contests: a "
            "person who did not take it decides the appeal"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Received:
    appeal: Appeal
    #: False: the same appeal was sent before (the platform's retry)
    new: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class Decided:
    appeal: Appeal
    case: Case
    #: the outcome's statement of reasons (None when the host issues none)
    statement: Statement | None
    #: one line per quarantined file or object put back (or queued, or not, and why)
    notes: tuple[str, ...] = ()


# -- receiving ----------------------------------------------------------------------------


def _check(new: NewAppeal) -> NewAppeal:
    if not re.fullmatch(REFERENCE_PATTERN, new.reference):
        raise InvalidAppeal(
            "reference: 1 to 200 letters, digits or '.', '_', ':', '/', '@', '#', '-'"
        )
    text = new.explanation.strip()
    if not text:
        raise InvalidAppeal("explanation: the uploader's reasons are required")
    if len(text) > MAX_EXPLANATION:
        raise InvalidAppeal(f"explanation: at most {MAX_EXPLANATION} characters")
    if (why := unstorable(text)) is not None:
        raise InvalidAppeal(f"explanation {why}")
    return NewAppeal(
        case_id=new.case_id,
        statement_puid=new.statement_puid,
        reference=new.reference,
        explanation=text,
    )


def _same(appeal: Appeal, new: NewAppeal) -> bool:
    return (appeal.case_id, appeal.statement_puid, appeal.explanation) == (
        new.case_id,
        new.statement_puid,
        new.explanation,
    )


def receive(store: Store, new: NewAppeal, *, actor: str, at: datetime) -> Received:
    """Take the appeal ``new`` sent by ``actor`` (the platform's token) at ``at``.

    Raises ``UnknownCase``, ``UnknownStatement``, ``InvalidAppeal``, ``AppealTooLate``,
    ``NotContestable`` (a statement that restricts nothing, or a case no longer
    restricted) and ``AppealConflict``. The same appeal sent again returns the first
    (``new`` False) and changes nothing, even after its six months."""
    new = _check(new)
    case = store.cases.get(new.case_id)
    found = store.appeals.find(new.reference)
    if found is not None:
        if not _same(found, new):
            raise AppealConflict(
                f"reference {new.reference!r} is appeal #{found.id}, about another "
                "statement or with another explanation"
            )
        return Received(appeal=found, new=False)
    statement = next(
        (s for s in store.statements.for_case(case.id) if s.puid == new.statement_puid), None
    )
    if statement is None:
        raise UnknownStatement(case.id, new.statement_puid)
    if statement.reasons.kind not in CONTESTABLE:
        raise NotContestable(
            f"{statement.puid} is a statement of kind {statement.reasons.kind}: only a "
            "restriction (automated or confirmed) is contested by appeal"
        )
    if case.state is CaseState.FALSE_POSITIVE:
        raise NotContestable(f"case #{case.id} is a false positive: nothing is restricted")
    if at > deadline(statement.reasons.decided_at):
        raise AppealTooLate(statement, at)
    earlier = [a for a in store.appeals.for_case(case.id) if a.statement_id == statement.id]
    if earlier:
        raise AppealConflict(
            f"{statement.puid} was already appealed (appeal #{earlier[0].id}, "
            f"{earlier[0].state}): one appeal per statement"
        )
    with store.atomic() as unit:
        try:
            appeal, added = unit.appeals.add(
                new, statement_id=statement.id, received_by=actor, at=at
            )
        except StatementAppealed as exc:
            raise AppealConflict(f"{statement.puid}: {exc}: one appeal per statement") from None
        if not added:  # the same reference, stored meanwhile by a concurrent request
            if not _same(appeal, new):
                raise AppealConflict(f"reference {new.reference!r} is appeal #{appeal.id}")
            return Received(appeal=appeal, new=False)
        current = unit.cases.get(case.id)
        unit.cases.transition(
            case.id,
            expected_version=current.version,
            actor=actor,
            kind=CaseEventKind.APPEALED,
            reason="the uploader contests the decision (Article 20 DSA)",
            details={"appeal": appeal.id, "statement": statement.puid},
            at=at,
        )
        record(
            unit,
            actor,
            AuditAction.APPEAL_RECEIVED,
            f"appeal:{appeal.id}",
            state="received",
            case=case.id,
            statement=statement.puid,
            contested_kind=str(statement.reasons.kind),
            source_type=str(statement.reasons.source_type),
            automated_decision=str(statement.reasons.automated_decision),
        )
    return Received(appeal=appeal, new=True)


# -- deciding -----------------------------------------------------------------------------


def first_deciders(store: Store, case: Case) -> frozenset[str]:
    """The people who took part in the case's decision so far: whoever confirmed,
    marked it a false positive or escalated it (``reviewer_of`` their actors)."""
    people = {reviewer_of(e.actor) for e in store.cases.history(case.id) if e.kind in _DECIDING}
    return frozenset(people | set(case.confirmers))


def eligible(store: Store, appeal: Appeal, actor: str) -> bool:
    """Whether ``actor``'s person may decide ``appeal`` (the UI shows the buttons)."""
    if not appeal.open:
        return False
    return reviewer_of(actor) not in first_deciders(store, store.cases.get(appeal.case_id))


def _decided_data(
    appeal: Appeal, case: Case, outcome: Outcome, statement: Statement | None
) -> dict[str, Any]:
    return {
        "appeal": appeal.id,
        "reference": appeal.reference,
        "case": case.id,
        "content_sha256": case.content_key,
        "content_id": case.content.content_id,
        "outcome": str(outcome.state),
        "contested_statement_puid": appeal.statement_puid,
        "statement": statement.id if statement else None,
        "statement_puid": statement.puid if statement else None,
        "text": statement.text if statement else None,
    }


def decide(
    store: Store,
    appeal_id: int,
    outcome: Outcome,
    *,
    actor: str,
    reason: str,
    at: datetime,
    allow_bank: str,
    endpoints: Sequence[WebhookEndpoint] = (),
) -> Decided:
    """Decide the open appeal ``appeal_id`` as ``actor`` (a person: ``cli:alice``,
    ``user:alice``, ``token:3/as:alice``) at ``at``; then, for a reversal, put back the
    case's quarantined files (``restore_content``).

    Raises ``UnknownAppeal``, ``ReasonRequired``, ``AppealClosed`` (decided already),
    ``SamePerson`` (the person took part in the first decision: no role bypasses it),
    ``NotContestable`` (upholding a case marked a false positive meanwhile: reversing
    it closes the appeal without changing the case) and
    ``StaleCase`` (the case changed while the decision was made: decide again)."""
    text = (reason or "").strip()
    if not text:
        raise ReasonRequired
    if (why := unstorable(text)) is not None:
        raise InvalidAppeal(f"reason {why}")
    appeal = store.appeals.get(appeal_id)
    if not appeal.open:
        raise AppealClosed(appeal)
    case = store.cases.get(appeal.case_id)
    person = reviewer_of(actor)
    if person in first_deciders(store, case):
        raise SamePerson(appeal, person)
    if case.state is CaseState.FALSE_POSITIVE and outcome is Outcome.UPHOLD:
        # marked a false positive meanwhile: the restriction is gone, nothing to uphold
        # (reversing still closes the appeal, with its statement and webhook)
        raise NotContestable(f"case #{case.id} is a false positive now: nothing to uphold")
    contested = store.statements.get(appeal.statement_id)
    # the exchanges were told of the first decision only when a person confirmed it
    feedback = (
        case_feedback(store, case, FeedbackVerdict.FALSE_POSITIVE, reason=text)
        if outcome is Outcome.REVERSE and case.state is CaseState.CONFIRMED
        else PlannedFeedback()
    )
    restoration = None
    if outcome is Outcome.REVERSE:
        restoration = Restoration.PENDING if holds_content(store, case) else Restoration.NONE
    try:
        with store.atomic() as unit:
            decided = _decide_in(
                unit,
                appeal,
                case,
                contested,
                outcome,
                actor=actor,
                reason=text,
                at=at,
                allow_bank=allow_bank,
                endpoints=endpoints,
                restoration=restoration,
                feedback=feedback,
            )
    except AppealAlreadyDecided as exc:
        raise AppealClosed(exc.appeal) from None
    if feedback.requests or feedback.error:
        feedback_audit(store, actor, decided.case, feedback)
    if decided.appeal.restoration is Restoration.PENDING:
        appeal, notes = restore_content(store, decided.appeal.id, actor=actor, at=at)
        return Decided(appeal=appeal, case=decided.case, statement=decided.statement, notes=notes)
    return decided


def _decide_in(
    unit: Store,
    appeal: Appeal,
    case: Case,
    contested: Statement,
    outcome: Outcome,
    *,
    actor: str,
    reason: str,
    at: datetime,
    allow_bank: str,
    endpoints: Sequence[WebhookEndpoint],
    restoration: Restoration | None,
    feedback: PlannedFeedback,
) -> Decided:
    current = unit.cases.get(case.id)
    person = reviewer_of(actor)
    if person in first_deciders(unit, current):  # again, in the transaction that decides
        raise SamePerson(appeal, person)
    details: dict[str, Any] = {"appeal": appeal.id, "statement": appeal.statement_puid}
    entries = []
    lifts = outcome is Outcome.REVERSE and current.state is not CaseState.FALSE_POSITIVE
    if lifts:
        _allow_bank(unit, allow_bank, actor)
        entries = _allow_entries(current, actor=actor, reason=reason)
        details |= {"allow_bank": allow_bank, "hashes": len(entries)}
    changed = unit.cases.transition(
        case.id,
        expected_version=current.version,
        actor=actor,
        kind=CaseEventKind.APPEAL_UPHELD
        if outcome is Outcome.UPHOLD
        else CaseEventKind.APPEAL_REVERSED,
        to_state=CaseState.FALSE_POSITIVE if lifts else None,
        reason=reason,
        details=details,
        # a reversal tells whoever the first decision told: the platform's
        # ``case.false_positive`` and the exchanges' feedback
        actions=[
            *case_webhooks(
                current, CaseState.FALSE_POSITIVE, EventType.CASE_FALSE_POSITIVE, endpoints
            ),
            *feedback.actions,
        ]
        if lifts
        else (),
        at=at,
    )
    why = f"cancelled: the decision was reversed on appeal #{appeal.id}"
    if lifts and cancel_quarantines(unit, changed, error=why, at=at):
        restoration = Restoration.PENDING  # put back once the running move ends
    if entries:
        counts = unit.banks.add_entries(allow_bank, entries)
        record(
            unit,
            actor,
            AuditAction.BANK_ENTRIES_ADDED,
            f"bank:{allow_bank}",
            case=case.id,
            added=counts.added,
            updated=counts.updated,
            restored=counts.restored,
            unchanged=counts.unchanged,
        )
    statement = None
    with unit.transaction() as writes:
        config = config_of(writes.statement_settings(STATEMENTS)[0])
        if config.issue:
            sor = appeal_reasons(
                contested.reasons, config, outcome=outcome, appeal_id=appeal.id, at=at
            )
            statement, _ = writes.add_statement(sor, appeal_text(sor), at=at)
            writes.audit(
                actor,
                AuditAction.STATEMENT_ISSUED,
                f"case:{case.id}",
                {
                    "statement": statement.id,
                    "puid": sor.puid,
                    "kind": str(sor.kind),
                    "source_type": str(sor.source_type),
                    "automated_decision": str(sor.automated_decision),
                },
            )
        decided = unit.appeals.decide(
            appeal.id,
            state=outcome.state,
            decided_by=actor,
            reason=reason,
            at=at,
            decision_statement_id=statement.id if statement else None,
            restoration=restoration,
        )
        actions = webhook_actions(
            EventType.APPEAL_DECIDED,
            _decided_data(decided, changed, outcome, statement),
            endpoints,
            key=f"appeal:{appeal.id}:decided",
            subject=f"case:{case.id}",
            at=at,
        )
        for action in actions:
            writes.enqueue(action, at=at)
        if lifts and (notices := notice_sources(changed)):
            # the notifier was told the content was restricted: now it is not
            _answer_notifiers(
                writes, changed, notices, None, at=at, actor=actor, endpoints=endpoints
            )
        writes.audit(
            actor,
            AuditAction.APPEAL_DECIDED,
            f"appeal:{appeal.id}",
            {
                "state": str(outcome.state),
                "case": case.id,
                "statement": appeal.statement_puid,
                "decision_statement": statement.puid if statement else None,
                "from_state": str(current.state),
                "to_state": str(changed.state),
                "restoration": str(restoration) if restoration else None,
                "webhooks": len(actions),
                "received_at": appeal.received_at.isoformat(),
                "decided_at": at.isoformat(),
            },
        )
    return Decided(appeal=decided, case=changed, statement=statement)


# -- restoring ----------------------------------------------------------------------------


#: when a restoration that failed (or a crash left pending) is tried again by the
#: restores job: the shared rule; after a week the job leaves it to an operator
#: (``hashguard appeals restore ID``)
RESTORE_BACKOFF = Backoff(
    first=timedelta(minutes=5), longest=timedelta(hours=6), give_up_after=timedelta(days=7)
)


def _retry_after(appeal: Appeal, state: Restoration, at: datetime) -> datetime | None:
    """When the restores job tries ``appeal``'s restoration again (None: never)."""
    if state not in (Restoration.FAILED, Restoration.PENDING):
        return None
    limit = RESTORE_BACKOFF.give_up_after
    if limit is not None and appeal.decided_at is not None and at - appeal.decided_at >= limit:
        return None
    return at + RESTORE_BACKOFF.delay(appeal.restore_attempts + 1)


def restore_content(
    store: Store, appeal_id: int, *, actor: str, at: datetime | None = None
) -> tuple[Appeal, tuple[str, ...]]:
    """Put back the quarantined files of a reversed appeal's case and queue, once, the
    restore of each object quarantined with its content; record the outcome with
    ``appeal.restored``: ``restored`` (every file and object back), ``pending`` (an
    object's restore or quarantine is not carried out yet), or ``failed`` naming each
    file or object not put back and why (a file or object now at the original place is
    never overwritten). Running it again (after a crash left ``pending``, or after the
    cause of a failure was fixed) retries the files still in quarantine and looks again
    at the objects' restores (the restores job does, on ``RESTORE_BACKOFF``)."""
    appeal = store.appeals.get(appeal_id)
    if appeal.state is not AppealState.REVERSED:
        raise AppealError(f"appeal #{appeal.id} is {appeal.state}: only a reversal restores")
    case = store.cases.get(appeal.case_id)
    moment = at if at is not None else datetime.now(UTC)
    done = put_back(store, case, actor=actor, at=moment)
    state = done.state
    retry = _retry_after(appeal, state, moment)
    with store.atomic() as unit:
        appeal = unit.appeals.set_restoration(appeal.id, state, done.notes, retry_after=retry)
        record(
            unit,
            actor,
            AuditAction.APPEAL_RESTORED,
            f"appeal:{appeal.id}",
            case=case.id,
            restoration=str(state),
            files=done.files,
            objects=len(done.notes) - done.files,
            failed=done.failed,
            pending=done.pending,
            attempt=appeal.restore_attempts,
            retry_after=retry.isoformat() if retry else None,
        )
    return appeal, done.notes


def restore_due(store: Store, *, actor: str, at: datetime, limit: int = 100) -> list[Appeal]:
    """The restores job: try again every reversal's restoration that is ``pending`` (a
    crash came between the decision and the move, or an object's restore is queued) or
    ``failed``, when the backoff says
    (``RESTORE_BACKOFF``); each try is audited (``appeal.restored``). The appeals tried,
    as they are now."""
    tried = []
    for appeal in store.appeals.restores_due(at, limit=limit):
        tried.append(restore_content(store, appeal.id, actor=actor, at=at)[0])
    return tried
