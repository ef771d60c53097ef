"""The case page's feedback to the lists: the outbox entries about a case (``about``), and
each feedback entry as the page shows it — exchange, entry, verdict, state, last error,
never a hash. (The review demo's test shows the page itself, delivered.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hashguard.actions.feedback import FeedbackRequest, feedback_action
from hashguard.domain.actions import ActionKind, EventType, NewAction
from hashguard.domain.exchanges import FeedbackVerdict
from hashguard.domain.signals import Algorithm
from hashguard.store import Store
from hashguard.web.ui.feedback import case_feedback

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
OWNER = "test-dispatcher"
LEASE = timedelta(minutes=5)


def _feedback(case: int, entry: str | None, verdict: FeedbackVerdict, **more: object) -> NewAction:
    return feedback_action(
        FeedbackRequest(
            exchange="lists",
            bank="lists",
            algorithm=Algorithm.PDQ if entry is None else Algorithm.MD5,
            verdict=verdict,
            entry_id=entry,
            case=case,
            **more,  # type: ignore[arg-type]
        )
    )


def test_the_entries_about_a_case_oldest_first_of_one_kind(store: Store) -> None:
    actions = store.actions
    webhook = NewAction(
        kind=ActionKind.WEBHOOK,
        idempotency_key="hook-1",
        payload={},
        event=EventType.CASE_CONFIRMED,
        target="platform",
        subject="case:1",
    )
    first = actions.enqueue(_feedback(1, "42:a", FeedbackVerdict.CONFIRMED), at=T0)
    hook = actions.enqueue(webhook, at=T0)
    second = actions.enqueue(_feedback(1, "42:b", FeedbackVerdict.CONFIRMED), at=T0)
    actions.enqueue(_feedback(12, "42:a", FeedbackVerdict.CONFIRMED), at=T0)

    about = actions.about("case:1", kind=ActionKind.FEEDBACK)
    assert [a.id for a in about] == [first, second]
    assert [a.id for a in actions.about("case:1")] == [first, hook, second]
    assert actions.about("case:1", kind=ActionKind.FEEDBACK, limit=1)[0].id == first
    assert actions.about("case:2") == []


def test_each_line_says_how_far_it_got(store: Store) -> None:
    actions = store.actions
    queued = actions.enqueue(_feedback(5, "42:a", FeedbackVerdict.CONFIRMED), at=T0)
    retrying = actions.enqueue(_feedback(5, "42:b", FeedbackVerdict.CONFIRMED), at=T0)
    delivered = actions.enqueue(_feedback(5, "42:c", FeedbackVerdict.CONFIRMED), at=T0)
    dead = actions.enqueue(
        _feedback(5, None, FeedbackVerdict.FALSE_POSITIVE, reason="Not CSAM", manual=True),
        at=T0,
    )
    claimed = {a.id for a in actions.claim_due(OWNER, T0, limit=10, lease=LEASE)}
    assert {queued, retrying, delivered, dead} <= claimed
    assert actions.mark_failed(retrying, OWNER, "ncmec: 503 Service Unavailable", T0 + LEASE)
    assert actions.mark_delivered(delivered, OWNER, T0 + timedelta(seconds=1))
    assert actions.mark_dead(dead, OWNER, "bank lists no longer holds it", T0 + LEASE)

    lines = {line.action_id: line for line in case_feedback(store, 5)}
    assert list(lines) == [queued, retrying, delivered, dead]
    assert {i: line.state for i, line in lines.items()} == {
        queued: "queued",
        retrying: "retrying",
        delivered: "delivered",
        dead: "dead",
    }
    assert lines[retrying].last_error == "ncmec: 503 Service Unavailable"
    assert lines[retrying].attempts == 1
    assert lines[delivered].settled_at == T0 + timedelta(seconds=1)
    assert lines[delivered].last_error is None
    gone = lines[dead]
    assert (gone.exchange, gone.algorithm, gone.entry_id) == ("lists", "pdq", None)
    assert (gone.verdict, gone.reason, gone.manual) == ("false_positive", "Not CSAM", True)
    assert gone.settled_at == T0 + LEASE
    assert case_feedback(store, 6) == ()
