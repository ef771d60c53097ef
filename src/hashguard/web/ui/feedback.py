"""The case page's feedback to the lists (``_case_feedback.html``): every feedback
outbox entry queued for the case (by its final decision, or by hand with ``hashguard
exchanges feedback --case``) and how far it got. Never a hash: the entries hold none
(the deliverer looks the list's value up when it sends)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hashguard.actions.feedback import FeedbackRequest
from hashguard.domain.actions import ActionKind, ActionState, OutboxAction
from hashguard.store import Store

#: feedback entries the page shows at most
SHOWN = 200


@dataclass(frozen=True, kw_only=True, slots=True)
class FeedbackLine:
    """One feedback entry as the page shows it. ``state``: ``queued`` (not tried yet),
    ``retrying`` (tried, to be tried again), ``delivered`` or ``dead`` (a dead letter:
    nothing more is sent unless a lead puts it back)."""

    action_id: int
    exchange: str
    algorithm: str
    #: the list's entry id; ``None`` when the list names entries by hash alone
    entry_id: str | None
    verdict: str
    reason: str | None
    manual: bool
    state: str
    attempts: int
    last_error: str | None
    queued_at: datetime
    settled_at: datetime | None


def _state(action: OutboxAction) -> str:
    if action.state is ActionState.PENDING:
        return "retrying" if action.attempts else "queued"
    return str(action.state)


def _line(action: OutboxAction) -> FeedbackLine | None:
    try:
        request = FeedbackRequest.from_json(action.payload)
    except (KeyError, ValueError, TypeError):
        return None  # not one the deliverer could send either: the dead letters show it
    return FeedbackLine(
        action_id=action.id,
        exchange=request.exchange,
        algorithm=str(request.algorithm),
        entry_id=request.entry_id,
        verdict=str(request.verdict),
        reason=request.reason,
        manual=request.manual,
        state=_state(action),
        attempts=action.attempts,
        last_error=action.last_error,
        queued_at=action.created_at,
        settled_at=action.delivered_at or action.dead_at,
    )


def case_feedback(store: Store, case_id: int) -> tuple[FeedbackLine, ...]:
    """The case's feedback entries, oldest first (reads the store: call it in a worker
    thread)."""
    found = store.actions.about(f"case:{case_id}", kind=ActionKind.FEEDBACK, limit=SHOWN)
    return tuple(line for line in map(_line, found) if line is not None)
