"""Shape of /v1/whoami: what a token is, so a client can check it before it is used."""

from __future__ import annotations

from pydantic import BaseModel, Field

from hashguard.domain.tokens import Scope


class WhoamiOut(BaseModel):
    """The calling token (never its secret) and the limits the service holds it to."""

    name: str = Field(description="the token's name")
    scopes: list[Scope]
    user: str | None = Field(description="the person the token acts for, if any")
    expires_at: str | None = Field(description="ISO 8601, or null: it does not expire")
    lookup_max_batch: int = Field(description="hashes one POST /v1/lookup may carry")
    lookup_rate_per_minute: int = Field(description="hashes the token may look up a minute")
    tenant: str | None = Field(
        default=None,
        description="the tenant of the hash check service the token belongs to, if any "
        "(its quota and use: GET /v1/tenant)",
    )
