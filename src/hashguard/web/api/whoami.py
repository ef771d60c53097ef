"""GET /v1/whoami: the calling token's name, scopes and person, for any valid token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from hashguard.domain.people import User
from hashguard.domain.tokens import Token
from hashguard.web.deps import identified, services
from hashguard.web.schemas.whoami import WhoamiOut
from hashguard.web.services import Services

router = APIRouter(prefix="/v1", tags=["whoami"])


@router.get("/whoami", response_model=WhoamiOut, summary="The calling token")
def whoami(
    caller: Annotated[tuple[Token, User | None], Depends(identified)],
    svc: Annotated[Services, Depends(services)],
) -> WhoamiOut:
    """What the token is (its name, scopes and the person it acts for) and the lookup
    limits it is held to; any valid token may ask. ``hashguard init --via`` checks a
    token with it before writing it into a client's configuration."""
    token, owner = caller
    return WhoamiOut(
        name=token.name,
        scopes=sorted(token.scopes),
        user=owner.name if owner is not None else None,
        expires_at=token.expires_at.isoformat() if token.expires_at else None,
        lookup_max_batch=svc.settings.lookup_max_batch,
        lookup_rate_per_minute=svc.settings.lookup_rate_per_minute,
        tenant=token.tenant,
    )
