"""API tokens: scopes, and the record kept of a token (never its secret)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

#: The only scope a tenant's token may have: tenants look hashes up and read their own
#: use (``GET /v1/tenant``), never the operator's cases, banks or scans.
TENANT_SCOPES = frozenset({"lookup"})


class Scope(StrEnum):
    """Persisted scope names. ``admin`` grants every scope."""

    SCAN = "scan"
    LOOKUP = "lookup"
    BANKS_READ = "banks:read"
    BANKS_WRITE = "banks:write"
    #: the review cases: list and read them (never the content's bytes)
    CASES_READ = "cases:read"
    #: decide and assign cases, as the person who owns the token (``tokens create --user``)
    CASES_REVIEW = "cases:review"
    #: send DSA Art. 16 notices (``POST /v1/notices``): hotlines, trusted flaggers
    NOTICES = "notices"
    #: send an uploader's appeal (DSA Art. 20) against a restriction and read the
    #: appeals of a case (``/v1/cases/{id}/appeals``): the platform
    APPEALS = "appeals"
    #: read the aggregate statistics (``GET /v1/stats``): counts, never a case or content
    STATS = "stats"
    ADMIN = "admin"


@dataclass(frozen=True, kw_only=True, slots=True)
class Token:
    id: int
    name: str
    scopes: frozenset[Scope]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    #: the tenant of the hash check service the token belongs to (None: the operator's own)
    tenant: str | None = None
    #: whether that tenant is suspended (its tokens are then refused)
    tenant_suspended: bool = False

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


def token_to_json(token: Token, *, user: str | None) -> dict[str, Any]:
    """The JSON shape of a token (listings, audit entries): never its secret. ``user`` is
    the name of the person it acts for, if any."""
    return {
        "id": token.id,
        "name": token.name,
        "user": user,
        "scopes": sorted(str(s) for s in token.scopes),
        "created_at": token.created_at.isoformat(),
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "tenant": token.tenant,
    }
