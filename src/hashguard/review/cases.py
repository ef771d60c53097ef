"""The review workflow's rules: which results open cases, and who may move a case where.

Every function takes the store it works on and the acting person (an audit actor such
as ``cli:alice``, ``user:bob`` or ``cli:root/as:carol`` for a step an operator enters on
a reviewer's behalf) and records each change in the case's history and the audit log.
A change is made against the version of the case the reviewer saw (``version``; the
current one when not given): if the case changed meanwhile, ``StaleCase`` is raised and
nothing changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hashguard.audit import record
from hashguard.classify.signals import CLASSIFIER_BAND, is_classifier_decision
from hashguard.domain.actions import EventType, WebhookEndpoint
from hashguard.domain.audit import AuditAction
from hashguard.domain.banks import BankEntry, BankKind
from hashguard.domain.cases import (
    Case,
    CaseEvent,
    CaseEventKind,
    CaseSource,
    CaseState,
    ContentRef,
    SourceKind,
    allowed,
)
from hashguard.domain.exchanges import FeedbackVerdict
from hashguard.domain.matches import match_to_json
from hashguard.domain.people import NAME_PATTERN
from hashguard.domain.policy import Decision, decision_to_json
from hashguard.domain.reports import FileAnnotation, IndustryClassification
from hashguard.domain.scans import FileResult, Outcome
from hashguard.domain.signals import Algorithm, PdqHash, leaving, signals_shown
from hashguard.domain.stats import band_of
from hashguard.review.effects import PlannedFeedback, case_feedback, case_webhooks, feedback_audit
from hashguard.store import Store
from hashguard.store.banks import BankExists
from hashguard.store.cases import StaleCase, UnknownCase
from hashguard.store.unit import Writes

__all__ = [
    "InvalidTransition",
    "NotAnAllowBank",
    "OpenReport",
    "ReasonRequired",
    "ReferencePdq",
    "ReviewError",
    "SameReviewer",
    "StaleCase",
    "UnknownCase",
    "annotate",
    "assign",
    "case_json",
    "confirm",
    "delegated_actor",
    "escalate",
    "event_json",
    "mark_false_positive",
    "open_cases_for_run",
    "open_from_result",
    "open_in",
    "reviewer_of",
    "set_classification",
]

#: Who opens cases from recorded results when no person does.
SYSTEM_ACTOR = "system:review"


class ReviewError(ValueError):
    """A review step that the workflow's rules refuse."""


class InvalidTransition(ReviewError):
    def __init__(self, case: Case, to_state: CaseState | str) -> None:
        super().__init__(f"case #{case.id} is {case.state}: it cannot become {to_state}")
        self.case = case


class ReasonRequired(ReviewError):
    def __init__(self) -> None:
        super().__init__("a reason is required")


class SameReviewer(ReviewError):
    def __init__(self, case: Case, reviewer: str) -> None:
        super().__init__(
            f"case #{case.id} was already confirmed by {reviewer}: the second "
            "confirmation must come from a different person"
        )
        self.case = case


class NotAnAllowBank(ReviewError):
    def __init__(self, name: str) -> None:
        super().__init__(f"bank {name!r} is not an allow bank")


class InvalidName(ReviewError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name!r} is not a reviewer name: up to 100 letters, digits, '.', '_', '@' or '-'"
        )


def _check_name(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        raise InvalidName(name)
    return name


def delegated_actor(operator: str, reviewer: str) -> str:
    """The actor of a step an operator enters for ``reviewer``: both stay on record."""
    return f"{operator}/as:{_check_name(reviewer)}"


def reviewer_of(actor: str) -> str:
    """The person behind an actor, for the two-person rule: ``cli:alice`` and
    ``user:alice`` are both ``alice``; ``cli:root/as:bob`` is ``bob``; other kinds
    (``token:3``) are themselves."""
    if "/as:" in actor:
        return actor.rsplit("/as:", 1)[1]
    kind, _, name = actor.partition(":")
    return name if kind in ("cli", "user") else actor


def _reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise ReasonRequired
    return text


# -- opening cases --------------------------------------------------------------------


def case_band(decision: Decision) -> str:
    """The ``band`` label a case is counted under (CASES_OPENED, CASES_DECIDED):
    ``classifier`` for a case a classifier's score opened (no list match), so that each
    classifier's precision at its threshold can be read apart; else the band of its
    decision (``domain.stats.band_of``)."""
    if is_classifier_decision(decision):
        return CLASSIFIER_BAND
    return band_of(decision.action)


def open_in(
    writes: Writes,
    result: FileResult,
    source: CaseSource,
    *,
    actor: str = SYSTEM_ACTOR,
    content: ContentRef | None = None,
    evidence_id: str | None = None,
) -> tuple[Case, CaseEventKind | None] | None:
    """Open the case of ``result``'s content, or add this sighting to its case, inside
    the transaction of ``writes``, with its audit event.

    A case is opened for matched content the policy sends to act or to review
    (``Decision.opens_case``); never for a shadow bank's would-be decision or an ignored
    match: then ``None``. Else the case and what happened (``OPENED``, ``SEEN_AGAIN``,
    or ``None`` when the case already held this sighting: calling twice is harmless).
    """
    if not result.decision.opens_case or result.signals is None:
        return None
    case, change = writes.open_case(
        content_key=result.signals.sha256,
        source=source,
        signals=result.signals,
        matches=result.matches,
        remote=result.remote,
        decision=result.decision,
        actor=actor,
        content=content,
        evidence_id=evidence_id,
    )
    if change is not None:
        action = (
            AuditAction.CASE_OPENED
            if change is CaseEventKind.OPENED
            else AuditAction.CASE_SEEN_AGAIN
        )
        writes.audit(
            actor,
            action,
            f"case:{case.id}",
            {
                "source": source.as_json(),
                "decided": str(result.decision.action),
                "rule": result.decision.rule,
                "banks": list(case.banks),
                # the statistics' labels (``store.stats_events``)
                "bank": result.decision.bank,
                "band": case_band(result.decision),
            },
        )
    return case, change


def open_from_result(
    store: Store,
    result: FileResult,
    source: CaseSource,
    *,
    actor: str = SYSTEM_ACTOR,
    content: ContentRef | None = None,
    evidence_id: str | None = None,
) -> tuple[Case, CaseEventKind | None] | None:
    """``open_in`` in a transaction of its own."""
    with store.transaction() as writes:
        return open_in(
            writes, result, source, actor=actor, content=content, evidence_id=evidence_id
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class OpenReport:
    opened: int = 0
    seen_again: int = 0
    unchanged: int = 0


def open_cases_for_run(store: Store, run_id: int, *, actor: str = SYSTEM_ACTOR) -> OpenReport:
    """Open (or add to) the cases of a scan run's recorded results that need a person.
    Idempotent: running it again changes nothing. Raises ``UnknownRun``."""
    store.scans.get(run_id)
    # Read them all first: matched files are few, and no read stays open across writes.
    matched = [
        r for r in store.scans.results(run_id, outcome=Outcome.MATCHED) if r.decision.opens_case
    ]
    counts = {"opened": 0, "seen_again": 0, "unchanged": 0}
    for result in matched:
        source = CaseSource(kind=SourceKind.SCAN, ref=str(run_id), path=result.path)
        opened = open_from_result(store, result, source, actor=actor)
        assert opened is not None
        change = opened[1]
        key = "unchanged" if change is None else str(change)
        counts[key] += 1
    return OpenReport(**counts)


# -- the reviewers' steps -----------------------------------------------------------


def _current(store: Store, case_id: int, version: int | None) -> tuple[Case, int]:
    case = store.cases.get(case_id)
    return case, case.version if version is None else version


def _audit(
    store: Store, actor: str, action: AuditAction, case: Case, before: Case, **details: Any
) -> None:
    record(
        store,
        actor,
        action,
        f"case:{case.id}",
        from_state=str(before.state),
        to_state=str(case.state),
        version=case.version,
        # the statistics' labels (``store.stats_events``)
        bank=case.decision.bank,
        band=case_band(case.decision),
        **details,
    )


def assign(
    store: Store,
    case_id: int,
    assignee: str | None,
    *,
    actor: str,
    reason: str | None = None,
    version: int | None = None,
) -> Case:
    """Give an open case to ``assignee`` (``None``: unassign). A final case has no one
    to work on it."""
    if assignee is not None:
        _check_name(assignee)
    case, version = _current(store, case_id, version)
    if case.state.final:
        raise InvalidTransition(case, "assigned")
    text = (reason or "").strip() or None
    changed = store.cases.transition(
        case_id,
        expected_version=version,
        actor=actor,
        kind=CaseEventKind.ASSIGNED,
        reason=text,
        assignee=assignee,
        details={"assignee": assignee, "previous": case.assignee},
    )
    _audit(
        store,
        actor,
        AuditAction.CASE_ASSIGNED,
        changed,
        case,
        assignee=assignee,
        previous=case.assignee,
        reason=text,
    )
    return changed


def confirm(
    store: Store,
    case_id: int,
    *,
    actor: str,
    reason: str,
    second_confirmation: bool,
    version: int | None = None,
    endpoints: Sequence[WebhookEndpoint] = (),
) -> Case:
    """Confirm that the content is what the match says.

    With ``second_confirmation`` (the setting, on by default) the first confirmation
    leaves the case ``confirmed_once`` and a second one by a different person makes it
    ``confirmed``; nobody confirms the same case twice. Only ``confirmed`` content is
    ever reported. The confirmation that makes it ``confirmed`` queues
    ``case.confirmed`` to ``endpoints``, and feedback to the exchanges with feedback on
    whose entries the case matched, in the same transaction.
    """
    text = _reason(reason)
    case, version = _current(store, case_id, version)
    reviewer = reviewer_of(actor)
    if reviewer in case.confirmers:
        raise SameReviewer(case, reviewer)
    confirmers = (*case.confirmers, reviewer)
    needed = 2 if second_confirmation else 1
    target = CaseState.CONFIRMED if len(confirmers) >= needed else CaseState.CONFIRMED_ONCE
    if not allowed(case.state, target):
        raise InvalidTransition(case, target)
    final = target is CaseState.CONFIRMED
    feedback = (
        case_feedback(store, case, FeedbackVerdict.CONFIRMED, reason=text)
        if final
        else PlannedFeedback()
    )
    changed = store.cases.transition(
        case_id,
        expected_version=version,
        actor=actor,
        kind=CaseEventKind.CONFIRMED,
        to_state=target,
        reason=text,
        confirmers=confirmers,
        details={"confirmations": len(confirmers), "needed": needed},
        actions=(
            [*case_webhooks(case, target, EventType.CASE_CONFIRMED, endpoints), *feedback.actions]
            if final
            else ()
        ),
    )
    _audit(
        store,
        actor,
        AuditAction.CASE_CONFIRMED,
        changed,
        case,
        reason=text,
        confirmations=len(confirmers),
        needed=needed,
    )
    feedback_audit(store, actor, changed, feedback)
    return changed


def escalate(
    store: Store, case_id: int, *, actor: str, reason: str, version: int | None = None
) -> Case:
    """Hand a case to someone senior (legal, a lead reviewer)."""
    text = _reason(reason)
    case, version = _current(store, case_id, version)
    if not allowed(case.state, CaseState.ESCALATED):
        raise InvalidTransition(case, CaseState.ESCALATED)
    changed = store.cases.transition(
        case_id,
        expected_version=version,
        actor=actor,
        kind=CaseEventKind.ESCALATED,
        to_state=CaseState.ESCALATED,
        reason=text,
    )
    _audit(store, actor, AuditAction.CASE_ESCALATED, changed, case, reason=text)
    return changed


def annotate(
    store: Store,
    case_id: int,
    *,
    actor: str,
    annotations: Sequence[FileAnnotation] = (),
    classification: IndustryClassification | None = None,
    set_classification: bool = False,
    reason: str | None = None,
    version: int | None = None,
) -> Case:
    """Set what a report says of the case's file: its NCMEC ``fileAnnotations``
    (``annotations``, replacing the earlier ones; empty clears them) or, with
    ``set_classification``, its industry classification (``None`` clears it). Kept as
    the case's history (``annotated`` / ``classified``: the latest of each wins) and
    audited. A false positive is never reported, so it takes neither."""
    case, version = _current(store, case_id, version)
    if case.state is CaseState.FALSE_POSITIVE:
        raise InvalidTransition(case, "annotated")
    text = (reason or "").strip() or None
    if set_classification:
        kind, action = CaseEventKind.CLASSIFIED, AuditAction.CASE_CLASSIFIED
        details: dict[str, Any] = {
            "classification": str(classification) if classification else None
        }
    else:
        kind, action = CaseEventKind.ANNOTATED, AuditAction.CASE_ANNOTATED
        details = {"annotations": sorted({str(a) for a in annotations})}
    changed = store.cases.transition(
        case_id, expected_version=version, actor=actor, kind=kind, reason=text, details=details
    )
    _audit(store, actor, action, changed, case, reason=text, **details)
    return changed


def set_classification(
    store: Store,
    case_id: int,
    classification: IndustryClassification | None,
    *,
    actor: str,
    reason: str | None = None,
    version: int | None = None,
) -> Case:
    """``annotate`` for the industry classification (sent only by a host that signed
    NCMEC's hash-sharing MOU: ``reports.ncmec``)."""
    return annotate(
        store,
        case_id,
        actor=actor,
        classification=classification,
        set_classification=True,
        reason=reason,
        version=version,
    )


#: Reference PDQ hashes of a case's content, computed when the case holds none (e.g.
#: from its evidence: ``hashguard.review.reference.from_evidence``).
ReferencePdq = Callable[[Case], Sequence[PdqHash]]


def _allow_pdq(case: Case, reference: ReferencePdq | None) -> tuple[PdqHash, ...]:
    """The reference PDQ hashes an allow bank gets: the case's own, else ``reference``'s
    (refused with ``NotReference`` if it gives any other), else none."""
    signals = case.signals
    assert signals is not None
    if signals.needs_reference and reference is not None:
        return leaving(reference(case))
    return leaving(signals.reference_pdq)


def _allow_entries(
    case: Case, *, actor: str, reason: str, reference: ReferencePdq | None = None
) -> list[BankEntry]:
    """The content's exact hashes and its good-quality reference PDQ hashes (low-quality
    ones would suppress unrelated images; a list entry is a reference hash, as every
    list's is, so a fast-mode hash never becomes one)."""
    signals = case.signals
    if signals is None:
        return []
    meta = {"case_id": case.id, "by": actor, "reason": reason}
    common: dict[str, Any] = {
        "entry_id": f"case-{case.id}",
        "category": "false_positive",
        "metadata": meta,
    }
    entries = [
        BankEntry(algorithm=algorithm, value=signals.exact(algorithm), **common)
        for algorithm in (Algorithm.MD5, Algorithm.SHA1, Algorithm.SHA256)
    ]
    entries += [
        BankEntry(algorithm=Algorithm.PDQ, value=pdq.value, **common)
        for pdq in _allow_pdq(case, reference)
        if not pdq.low_quality
    ]
    return entries


def _allow_bank(store: Store, name: str, actor: str) -> None:
    """Make sure ``name`` is an allow bank, creating it if missing."""
    bank = store.banks.find(name)
    if bank is None:
        try:
            bank = store.banks.create(name, kind=BankKind.ALLOW)
            record(store, actor, AuditAction.BANK_CREATED, f"bank:{name}", kind=str(bank.kind))
        except BankExists:
            bank = store.banks.get(name)
    if bank.kind is not BankKind.ALLOW:
        raise NotAnAllowBank(name)


def mark_false_positive(
    store: Store,
    case_id: int,
    *,
    actor: str,
    reason: str,
    allow_bank: str,
    version: int | None = None,
    endpoints: Sequence[WebhookEndpoint] = (),
    reference: ReferencePdq | None = None,
) -> Case:
    """Close the case as a false positive and add the content's hashes to the allow
    bank ``allow_bank`` (created as an allow bank if missing), with the case, who and
    why as each entry's metadata, so the same content no longer matches.

    PDQ entries are reference-mode hashes only: the case's own, or, when it holds only
    fast ones, those ``reference`` computes (called only then); without either the
    exact hashes alone are added and the history says so (``pdq_withheld``).

    ``case.false_positive`` goes to ``endpoints``, and feedback to the exchanges with
    feedback on whose entries the case matched, in the same transaction as the change.
    The bank is checked before the case changes; the entries are added right after the
    (version-checked) change, so a refused change adds nothing.
    """
    text = _reason(reason)
    case, version = _current(store, case_id, version)
    if not allowed(case.state, CaseState.FALSE_POSITIVE):
        raise InvalidTransition(case, CaseState.FALSE_POSITIVE)
    _allow_bank(store, allow_bank, actor)
    entries = _allow_entries(case, actor=actor, reason=text, reference=reference)
    withheld = not any(e.algorithm is Algorithm.PDQ for e in entries) and bool(
        case.signals and case.signals.needs_reference
    )
    feedback = case_feedback(store, case, FeedbackVerdict.FALSE_POSITIVE, reason=text)
    changed = store.cases.transition(
        case_id,
        expected_version=version,
        actor=actor,
        kind=CaseEventKind.FALSE_POSITIVE,
        to_state=CaseState.FALSE_POSITIVE,
        reason=text,
        details={
            "allow_bank": allow_bank,
            "hashes": len(entries),
            **({"pdq_withheld": "no reference PDQ hash"} if withheld else {}),
        },
        actions=[
            *case_webhooks(
                case, CaseState.FALSE_POSITIVE, EventType.CASE_FALSE_POSITIVE, endpoints
            ),
            *feedback.actions,
        ],
    )
    counts = store.banks.add_entries(allow_bank, entries)
    record(
        store,
        actor,
        AuditAction.BANK_ENTRIES_ADDED,
        f"bank:{allow_bank}",
        case=case.id,
        added=counts.added,
        updated=counts.updated,
        restored=counts.restored,
        unchanged=counts.unchanged,
    )
    _audit(
        store,
        actor,
        AuditAction.CASE_FALSE_POSITIVE,
        changed,
        case,
        reason=text,
        allow_bank=allow_bank,
        hashes=len(entries),
    )
    feedback_audit(store, actor, changed, feedback)
    return changed


def case_json(case: Case) -> dict[str, Any]:
    """A case as JSON (``cases show --json`` and the case API): never the content's bytes."""
    return {
        "id": case.id,
        "state": str(case.state),
        "reportable": case.reportable,
        "assignee": case.assignee,
        "confirmers": list(case.confirmers),
        "version": case.version,
        "content_key": case.content_key,
        "content_id": case.content.content_id,
        "uploader_id": case.content.uploader_id,
        "url": case.content.url,
        "sources": [s.as_json() for s in case.sources],
        "banks": list(case.banks),
        "decision": decision_to_json(case.decision),
        "matches": [match_to_json(m) for m in case.matches],
        "remote": [{"service": r.service, "status": str(r.status)} for r in case.remote],
        "signals": signals_shown(case.signals) if case.signals else None,
        "evidence_id": case.evidence_id,
        "created_at": case.created_at.isoformat(),
        "updated_at": case.updated_at.isoformat(),
    }


def event_json(event: CaseEvent) -> dict[str, Any]:
    return {
        "at": event.at.isoformat(),
        "actor": event.actor,
        "kind": str(event.kind),
        "from_state": str(event.from_state) if event.from_state else None,
        "to_state": str(event.to_state) if event.to_state else None,
        "reason": event.reason,
        "details": dict(event.details),
    }
