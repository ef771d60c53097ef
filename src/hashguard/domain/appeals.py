"""Appeals (DSA Art. 20): an uploader's complaint, through the platform, against a
restriction explained by a statement of reasons, and its outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

#: how long after the statement of reasons an appeal is taken (Art. 20(1): at least six
#: months): 184 days, the longest any six calendar months last (July to December), so
#: the window is never shorter than six months whatever the day it starts
APPEAL_WINDOW = timedelta(days=184)
#: the platform's reference of the appeal: its idempotency key
REFERENCE_PATTERN = r"^[A-Za-z0-9._:/@#-]{1,200}$"
MAX_EXPLANATION = 5000


class AppealState(StrEnum):
    """Where an appeal stands. Persisted names (the ``appeal.*`` audit events carry them
    as ``state``: ``received``, ``upheld``, ``reversed``, what ``Metric.APPEALS`` counts)."""

    OPEN = "open"
    UPHELD = "upheld"
    REVERSED = "reversed"


class Outcome(StrEnum):
    UPHOLD = "uphold"
    REVERSE = "reverse"

    @property
    def state(self) -> AppealState:
        return AppealState.UPHELD if self is Outcome.UPHOLD else AppealState.REVERSED


class Restoration(StrEnum):
    """What a reversal did to the content hashguard quarantined. Persisted names.

    ``pending``: reversed, the files not yet put back (a process stopped between the
    decision and the restore leaves it so: ``hashguard appeals restore ID``) or an
    object's queued restore not carried out yet (the restores job looks again);
    ``restored``: every quarantined file and object is back; ``failed``: at least one
    could not be put back (``restoration_notes`` say why; nothing is overwritten);
    ``none``: nothing of the case was in quarantine (the platform restores what it
    holds on ``appeal.decided``)."""

    PENDING = "pending"
    RESTORED = "restored"
    FAILED = "failed"
    NONE = "none"


@dataclass(frozen=True, kw_only=True, slots=True)
class NewAppeal:
    """What the platform sends for the uploader: the case, the statement of reasons the
    uploader contests (its puid), the platform's own reference and the explanation."""

    case_id: int
    statement_puid: str
    reference: str
    explanation: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Appeal:
    """One appeal. ``statement_id`` the contested statement; ``decision_statement_id``
    the statement of reasons of the outcome (None while open, or when the host issues
    no statements)."""

    id: int
    case_id: int
    statement_id: int
    statement_puid: str
    reference: str
    explanation: str
    state: AppealState
    received_at: datetime
    received_by: str
    decided_at: datetime | None = None
    decided_by: str | None = None
    reason: str | None = None
    decision_statement_id: int | None = None
    restoration: Restoration | None = None
    restoration_notes: tuple[str, ...] = ()
    #: restorations tried so far, and when the restores job tries again (None: no
    #: automatic retry is due)
    restore_attempts: int = 0
    restore_after: datetime | None = None

    @property
    def open(self) -> bool:
        return self.state is AppealState.OPEN


def appeal_json(appeal: Appeal) -> dict[str, Any]:
    """An appeal as JSON (the API, ``appeals list --json``, the webhook's data)."""
    return {
        "id": appeal.id,
        "case": appeal.case_id,
        "statement": appeal.statement_id,
        "statement_puid": appeal.statement_puid,
        "reference": appeal.reference,
        "explanation": appeal.explanation,
        "state": str(appeal.state),
        "received_at": appeal.received_at.isoformat(),
        "received_by": appeal.received_by,
        "decided_at": appeal.decided_at.isoformat() if appeal.decided_at else None,
        "decided_by": appeal.decided_by,
        "reason": appeal.reason,
        "decision_statement": appeal.decision_statement_id,
        "restoration": str(appeal.restoration) if appeal.restoration else None,
        "restoration_notes": list(appeal.restoration_notes),
        "restore_attempts": appeal.restore_attempts,
        "restore_after": appeal.restore_after.isoformat() if appeal.restore_after else None,
    }


def deadline(decided_at: datetime) -> datetime:
    """The last moment an appeal against a decision made at ``decided_at`` is taken."""
    return decided_at + APPEAL_WINDOW
