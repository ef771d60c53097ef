"""What a review decision sets off: the case's webhooks, feedback to the exchanges whose
entries matched, and files and objects put back from quarantine when their match was a
false positive."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from hashguard.actions.feedback import FeedbackRequest, feedback_action, plan_feedback
from hashguard.actions.objquarantine import object_restore_action
from hashguard.actions.outbox import derived_key, webhook_actions
from hashguard.actions.quarantine import RestoreRefused, restore
from hashguard.audit import record
from hashguard.domain.actions import (
    ActionKind,
    ActionState,
    EventType,
    NewAction,
    QuarantineState,
    WebhookEndpoint,
)
from hashguard.domain.appeals import Restoration
from hashguard.domain.audit import AuditAction
from hashguard.domain.cases import Case, CaseState, SourceKind
from hashguard.domain.exchanges import FeedbackVerdict
from hashguard.store import Store

log = logging.getLogger("hashguard.review")


def case_webhooks(
    case: Case, state: CaseState, event: EventType, endpoints: Sequence[WebhookEndpoint]
) -> list[NewAction]:
    """``event`` about ``case`` (now in ``state``) for every endpoint that wants it: the
    case id, its state and decision, never the content. Idempotent per case and event;
    they go into the outbox in the same transaction as the case's change."""
    data = {
        "case": case.id,
        "state": str(state),
        "content_sha256": case.content_key,
        "decision": {"action": str(case.decision.action), "rule": case.decision.rule},
    }
    return webhook_actions(
        event, data, endpoints, key=f"case:{case.id}:{event}", subject=f"case:{case.id}"
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class PlannedFeedback:
    """The feedback a decision queues, or why none could be planned."""

    requests: tuple[FeedbackRequest, ...] = ()
    error: str | None = None

    @property
    def actions(self) -> list[NewAction]:
        return [feedback_action(r) for r in self.requests]


def case_feedback(
    store: Store, case: Case, verdict: FeedbackVerdict, *, reason: str | None
) -> PlannedFeedback:
    """Feedback on each entry of an exchange with feedback on that ``case`` matched,
    for the decision that makes it final; it goes into the outbox in the same
    transaction as the case's change. Never raises: the decision lands without it
    if it cannot be planned (``feedback_audit`` then records why)."""
    try:
        requests = plan_feedback(case, store.exchanges.list(), verdict, reason=reason)
    except Exception as exc:
        log.exception("case %s: feedback to the exchanges could not be planned", case.id)
        return PlannedFeedback(error=f"{type(exc).__name__} while planning feedback")
    return PlannedFeedback(requests=tuple(requests))


def feedback_audit(store: Store, actor: str, case: Case, planned: PlannedFeedback) -> None:
    """``exchange.feedback_queued`` for each queued request (``exchange.feedback_failed``
    when none could be planned), after the decision committed. Never raises."""
    try:
        if planned.error is not None:
            record(
                store,
                actor,
                AuditAction.EXCHANGE_FEEDBACK_FAILED,
                f"case:{case.id}",
                error=planned.error,
            )
        for request in planned.requests:
            record(
                store,
                actor,
                AuditAction.EXCHANGE_FEEDBACK_QUEUED,
                f"exchange:{request.exchange}",
                **request.audit_details(),
            )
    except Exception:
        log.exception("case %s: the feedback's audit events could not be recorded", case.id)


def restore_quarantined(store: Store, case: Case, *, actor: str) -> list[str]:
    """Put back every file of ``case`` that a scan quarantined; one line per file said
    what happened (a file now at the original path is never overwritten)."""
    done = []
    for source in case.sources:
        if source.kind is not SourceKind.SCAN or source.path is None:
            continue
        key = derived_key(f"scan:{source.ref}:{source.path}", "quarantine")
        action = store.actions.find_by_key(key)
        if action is None:
            continue
        try:
            restored = restore(store.actions, action.id, actor=actor)
        except RestoreRefused as exc:
            done.append(f"{source.path}: not restored: {exc}")
        else:
            done.append(f"{restored.original_path}: restored from quarantine")
    return done + restore_objects(store, case, actor=actor)


def restore_objects(store: Store, case: Case, *, actor: str) -> list[str]:
    """Queue the restore of every object quarantined for ``case``'s content (a false
    positive): the dispatcher puts each back (``actions.objquarantine``); one line each
    for those not back yet."""
    return [
        r.note
        for r in object_restores(store, case.content_key, actor=actor)
        if r.state is not Restoration.RESTORED
    ]


@dataclass(frozen=True, kw_only=True, slots=True)
class ObjectRestore:
    """Where putting one quarantined object back stands: ``restored``, ``pending``
    (its restore is queued, not carried out yet) or ``failed`` (the restore was refused
    for good: ``note`` says why)."""

    uri: str
    state: Restoration
    note: str


def object_restores(
    store: Store, sha256: str, *, actor: str, at: datetime | None = None
) -> list[ObjectRestore]:
    """Queue, once, the restore of each object quarantined with the content ``sha256``
    (the outbox entry's idempotency key derives from the quarantine action: running this
    again queues nothing more) and say where each stands. A restore the dispatcher gave
    up on stays a dead letter (``hashguard actions retry ID`` queues it again)."""
    done = []
    for held in store.actions.object_quarantines(sha256=sha256):
        if held.state is QuarantineState.RESTORED:
            done.append(
                ObjectRestore(
                    uri=held.uri, state=Restoration.RESTORED, note=f"{held.uri}: restored"
                )
            )
            continue
        action = object_restore_action(held, actor=actor)
        queued = store.actions.find_by_key(action.idempotency_key)
        if queued is None:
            action_id = store.actions.enqueue(action, at=at)
            note = f"{held.uri}: restore from {held.quarantine_uri} queued (action {action_id})"
            done.append(ObjectRestore(uri=held.uri, state=Restoration.PENDING, note=note))
        elif queued.state is ActionState.PENDING:
            note = (
                f"{held.uri}: restore from {held.quarantine_uri} queued (action {queued.id}), "
                "not carried out yet"
            )
            done.append(ObjectRestore(uri=held.uri, state=Restoration.PENDING, note=note))
        elif queued.state is ActionState.DEAD:
            note = (
                f"{held.uri}: not restored: {queued.last_error or 'the restore was given up'} "
                f"(action {queued.id}: hashguard actions retry {queued.id} queues it again)"
            )
            done.append(ObjectRestore(uri=held.uri, state=Restoration.FAILED, note=note))
        else:  # delivered after the record was read: it is back
            done.append(
                ObjectRestore(
                    uri=held.uri, state=Restoration.RESTORED, note=f"{held.uri}: restored"
                )
            )
    return done


def objects_in_flight(store: Store, sha256: str) -> list[str]:
    """The objects of the content ``sha256`` whose quarantine is pending and has not
    started moving (a dispatcher holds it, or it was queued again by hand)."""
    return [
        str(action.payload.get("uri") or f"action {action.id}")
        for action in store.actions.pending(ActionKind.OBJECT_QUARANTINE, sha256=sha256)
        if store.actions.object_quarantine(action.id) is None
    ]


def cancel_object_quarantines(unit: Store, sha256: str, *, error: str, at: datetime) -> list[str]:
    """Stop the pending quarantines of objects with the content ``sha256`` that have not
    started moving (in the caller's transaction); ``error`` says why. The objects of
    those a dispatcher holds right now (they finish; the caller restores afterwards).
    One already moving is left to finish: its copy may already stand for the object."""
    busy = []
    for action in unit.actions.pending(ActionKind.OBJECT_QUARANTINE, sha256=sha256):
        if unit.actions.object_quarantine(action.id) is not None:
            continue
        if not unit.actions.cancel(action.id, error=error, at=at):
            busy.append(str(action.payload.get("uri") or f"action {action.id}"))
    return busy
