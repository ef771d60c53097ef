"""Leases: which process may run a named background job now, and when it last finished."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class Lease:
    """A named lease (``exchange-sync``, ``retention``, ``housekeeping``): held by
    ``holder`` until ``expires_at``; ``completed_at`` is when a holder last finished the
    job, whoever it was (``completed_by``). ``created_at`` is when the store first saw
    the name. Names are persisted identifiers, never renamed."""

    name: str
    holder: str | None
    acquired_at: datetime | None
    expires_at: datetime | None
    created_at: datetime
    completed_at: datetime | None
    completed_by: str | None

    def held(self, at: datetime) -> bool:
        """Whether anyone holds it at ``at`` (a holder past its expiry holds nothing)."""
        return self.holder is not None and self.expires_at is not None and self.expires_at > at

    def held_by(self, holder: str, at: datetime) -> bool:
        return self.held(at) and self.holder == holder
