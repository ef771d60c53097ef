"""How much content a reviewer has seen lately, and when they are reminded to take a break.

Reviewers of abuse material need protecting from overexposure. Each reveal of an
original is recorded; a reviewer who reached ``after`` reveals within the sliding
``window`` is shown a break reminder before the next one, and again at each further
multiple (``2 * after``, ...). Going on anyway is their call: the reminder is recorded,
never a lock-out. Pure rules; the caller counts reveals with the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from hashguard.settings import Settings


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


def reveal_open(last_reveal: datetime | None, now: datetime, *, seconds: float) -> bool:
    """Whether a reveal made at ``last_reveal`` still lets its session fetch the original."""
    if last_reveal is None:
        return False
    return (now - last_reveal).total_seconds() <= seconds
