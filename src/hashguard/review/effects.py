"""What a review decision sets off: the case's webhooks, feedback to the exchanges whose
entries matched, and files and objects put back from quarantine when their match was a
false positive."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from hashguard.actions.feedback import FeedbackRequest, feedback_action, plan_feedback
from hashguard.actions.outbox import derived_key, webhook_actions
from hashguard.actions.quarantine import RestoreRefused, restore
from hashguard.audit import record
from hashguard.domain.actions import EventType, NewAction, WebhookEndpoint
from hashguard.domain.appeals import Restoration
from hashguard.domain.audit import AuditAction
from hashguard.domain.cases import Case, CaseState, SourceKind
from hashguard.domain.exchanges import FeedbackVerdict
from hashguard.review.restoring import object_restores
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
