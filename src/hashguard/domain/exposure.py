"""Reviewers' exposure: extra reveals a lead granted beyond the exposure limit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class RevealGrant:
    """``extra`` reveals for ``user_id`` beyond the limit, from ``at`` until
    ``expires_at``; ``granted_by`` is the granting actor (``user:carol``, ``cli:root``)."""

    id: int
    user_id: int
    extra: int
    granted_by: str
    reason: str
    at: datetime
    expires_at: datetime

    def active(self, at: datetime) -> bool:
        return self.at <= at < self.expires_at
