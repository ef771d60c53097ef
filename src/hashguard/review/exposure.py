"""How much content a reviewer has seen lately: the break reminder, the exposure limit,
and the reveal that passes both.

Reviewers of abuse material need protecting from overexposure. Each reveal of an
original is recorded. Two rules apply, both over sliding windows:

- **the break reminder** (``BreakRule``): a reviewer who reached ``after`` reveals
  within its window is shown a reminder before the next one, and again at each further
  multiple (``2 * after``, ...). Going on anyway is their call, and is recorded.
- **the exposure limit** (``RevealLimit``): at most ``limit`` reveals within its window.
  Further reveals are refused, saying until when, until enough of them left the window
  or a lead grants more (``grant``: extra reveals until the window's length from now).

``reveal`` decides and records one reveal under a lock on the reviewer (see
``store.exposure``), so concurrent reveals cannot pass the limit together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from hashguard.domain.audit import AuditAction
from hashguard.domain.exposure import RevealGrant
from hashguard.settings import Settings
from hashguard.store.exposure import ExposureStore

#: the most reveals one grant may add
MAX_GRANT = 100


@dataclass(frozen=True, kw_only=True, slots=True)
class BreakRule:
    #: reveals within ``window`` that call for a reminder (0: never remind)
    after: int
    window: timedelta

    @classmethod
    def of(cls, settings: Settings) -> BreakRule:
        return cls(
            after=settings.review_break_after_reveals,
            window=timedelta(minutes=settings.review_break_window_minutes),
        )

    @property
    def window_minutes(self) -> float:
        return self.window.total_seconds() / 60

    def since(self, now: datetime) -> datetime:
        """Where the window that ends ``now`` starts."""
        return now - self.window

    def due(self, reveals_in_window: int) -> bool:
        """Whether to remind the reviewer before their next reveal, given how many they
        made in the window. At ``after`` and each multiple of it: one who went on after
        a reminder is not stopped again before ``after`` more reveals."""
        return (
            self.after > 0
            and reveals_in_window >= self.after
            and reveals_in_window % self.after == 0
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Refusal:
    """A reveal refused: ``count`` reveals in the window against ``allowed`` (the limit
    plus grants in force); reveals are possible again from ``until``."""

    count: int
    allowed: int
    until: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class RevealLimit:
    #: reveals allowed within ``window`` (0: no limit)
    limit: int
    window: timedelta

    @classmethod
    def of(cls, settings: Settings) -> RevealLimit:
        return cls(
            limit=settings.review_reveal_limit,
            window=timedelta(minutes=settings.review_reveal_limit_window_minutes),
        )

    @property
    def window_minutes(self) -> float:
        return self.window.total_seconds() / 60

    def since(self, now: datetime) -> datetime:
        """Reveals made after this count at ``now`` (one leaves the window exactly
        ``window`` after it was made)."""
        return now - self.window

    def allowed(self, grants: Sequence[RevealGrant], at: datetime) -> int:
        return self.limit + sum(g.extra for g in grants if g.active(at))

    def in_window(self, reveal_times: Sequence[datetime], at: datetime) -> int:
        """Reveals that count at ``at`` (one stamped later, by a server whose clock runs
        ahead, counts too)."""
        start = self.since(at)
        return sum(1 for t in reveal_times if t > start)

    def refusal(
        self, reveal_times: Sequence[datetime], grants: Sequence[RevealGrant], now: datetime
    ) -> Refusal | None:
        """Whether one more reveal at ``now`` is refused, and if so until when (with no
        new grant: grants that lapse meanwhile count only while in force)."""
        if self.limit == 0:
            return None
        count, allowed = self.in_window(reveal_times, now), self.allowed(grants, now)
        if count < allowed:
            return None
        # the count only falls, when a reveal leaves the window; so does the allowance
        for moment in sorted(t + self.window for t in reveal_times if t + self.window > now):
            if self.in_window(reveal_times, moment) < self.allowed(grants, moment):
                return Refusal(count=count, allowed=allowed, until=moment)
        raise AssertionError("unreachable: with no reveal in the window, one is allowed")


def reveal_open(last_reveal: datetime | None, now: datetime, *, seconds: float) -> bool:
    """Whether a reveal made at ``last_reveal`` still lets its session fetch the original."""
    if last_reveal is None:
        return False
    return (now - last_reveal).total_seconds() <= seconds


@dataclass(frozen=True, kw_only=True, slots=True)
class RevealOutcome:
    """What happened to a reveal request: revealed (``reveals_in_window`` counts it),
    held for a break reminder (``reminded``: reveals in the break window, nothing
    revealed), or refused by the limit (``refused``)."""

    revealed: bool
    reveals_in_window: int = 0
    reminded: int | None = None
    refused: Refusal | None = None


def reveal(
    exposure: ExposureStore,
    *,
    user_id: int,
    actor: str,
    case_id: int,
    evidence_id: str,
    session_id: str,
    now: datetime,
    breaks: BreakRule,
    limit: RevealLimit,
    acknowledged: bool,
    frame_ms: int | None = None,
) -> RevealOutcome:
    """Decide, record and audit one reveal of ``case_id``'s original, or of one frame of
    its video (``frame_ms``: the frame's time in milliseconds), in one transaction.

    The limit comes first: a refusal is audited (``review.reveal_refused``) whatever the
    reminder says. Then a due break reminder that was not acknowledged is audited
    (``review.break_reminded``) and nothing is revealed. Otherwise the reveal is
    recorded with its audit event (``content.revealed``): if the event cannot be
    written, nothing is revealed. Each frame is one reveal: the limit and the break
    reminder count frames, and each audit event of a frame carries its ``timestamp``
    (seconds)."""
    subject = f"case:{case_id}"
    frame = {} if frame_ms is None else {"timestamp": frame_ms / 1000}
    start = min(breaks.since(now), limit.since(now))
    with exposure.gate(user_id) as gate:
        times = gate.reveal_times(start)
        refused = limit.refusal(times, gate.grants(now), now)
        if refused is not None:
            gate.audit(
                actor,
                AuditAction.REVIEW_REVEAL_REFUSED,
                subject,
                {
                    "reveals": refused.count,
                    "allowed": refused.allowed,
                    "window_minutes": limit.window_minutes,
                    "until": refused.until.isoformat(),
                    **frame,
                },
                at=now,
            )
            return RevealOutcome(revealed=False, refused=refused)
        count = sum(1 for t in times if t >= breaks.since(now))
        due = breaks.due(count)
        if due and not acknowledged:
            gate.audit(
                actor,
                AuditAction.REVIEW_BREAK_REMINDED,
                subject,
                {"reveals": count, "window_minutes": breaks.window_minutes, **frame},
                at=now,
            )
            return RevealOutcome(revealed=False, reminded=count)
        gate.record_reveal(case_id, session_id=session_id, at=now, frame_ms=frame_ms)
        gate.audit(
            actor,
            AuditAction.CONTENT_REVEALED,
            subject,
            {
                "evidence": evidence_id,
                "session": session_id[:12],
                "reveals_in_window": count + 1,
                "window_minutes": breaks.window_minutes,
                "after_break_reminder": acknowledged and due,
                **frame,
            },
            at=now,
        )
        return RevealOutcome(revealed=True, reveals_in_window=count + 1)


def grant(
    exposure: ExposureStore,
    *,
    user_id: int,
    extra: int,
    reason: str,
    actor: str,
    now: datetime,
    limit: RevealLimit,
) -> RevealGrant:
    """Give a reviewer ``extra`` (1 to ``MAX_GRANT``) reveals beyond the limit, in force
    for one limit window from ``now``; the reason is required and audited."""
    if not 1 <= extra <= MAX_GRANT:
        raise ValueError(f"a grant adds 1 to {MAX_GRANT} reveals")
    if not reason.strip():
        raise ValueError("a grant needs a reason")
    return exposure.grant(
        user_id,
        extra=extra,
        reason=reason.strip(),
        actor=actor,
        at=now,
        expires_at=now + limit.window,
    )
