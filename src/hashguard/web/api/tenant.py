"""GET /v1/tenant: a tenant's own quota and use (its tokens' lookups and matches per UTC
day); GET /v1/tenants/{name}: the same for the hotline's admin tokens.

A tenant's token sees its own tenant only: any other name is 404 (not 403), answered
before the store is asked, so neither the answer nor its time says whether another
tenant exists. A token of no tenant has no tenant view (404)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from hashguard.domain.tenants import Tenant
from hashguard.domain.tokens import Scope, Token
from hashguard.services.tenants import tenant_usage
from hashguard.store.tenants import UnknownTenant
from hashguard.web.deps import require, services
from hashguard.web.problems import ProblemError, problem_responses
from hashguard.web.schemas.tenants import TenantOut
from hashguard.web.services import Services

router = APIRouter(prefix="/v1", tags=["tenants"])

Days = Annotated[int, Query(ge=1, le=366, description="UTC days of use to show, newest first")]


def _not_found() -> ProblemError:
    return ProblemError(404, "Not found", "no such tenant for this token")


def _view(svc: Services, tenant: Tenant, days: int) -> TenantOut:
    usage = tenant_usage(svc.store, tenant, now=svc.clock(), days=days)
    return TenantOut.of(usage, svc.store.tokens.of_tenant(tenant.id))


@router.get(
    "/tenant",
    response_model=TenantOut,
    responses=problem_responses(404),
    summary="This token's tenant: quota and use",
)
def own_tenant(
    token: Annotated[Token, Depends(require(Scope.LOOKUP))],
    svc: Annotated[Services, Depends(services)],
    days: Days = 30,
) -> TenantOut:
    """The quota of the token's tenant, today's use (hashes counted, remaining, when it
    renews) and its last ``days`` UTC days (calls, hashes, matched), with its tokens.
    404 for a token that belongs to no tenant."""
    if token.tenant is None:
        raise _not_found()
    try:
        tenant = svc.store.tenants.named(token.tenant)
    except UnknownTenant:
        raise _not_found() from None
    return _view(svc, tenant, days)


@router.get(
    "/tenants/{name}",
    response_model=TenantOut,
    responses=problem_responses(404),
    summary="A tenant's quota and use",
)
def named_tenant(
    name: Annotated[str, Path(max_length=100)],
    token: Annotated[Token, Depends(require(Scope.LOOKUP))],
    svc: Annotated[Services, Depends(services)],
    days: Days = 30,
) -> TenantOut:
    """A tenant's view: a tenant's token may read its own only, an admin token of the
    service any; everything else is 404."""
    mine = token.tenant is not None and token.tenant == name
    hotline = token.tenant is None and token.allows(Scope.ADMIN)
    if not (mine or hotline):
        raise _not_found()
    try:
        tenant = svc.store.tenants.named(name)
    except UnknownTenant:
        raise _not_found() from None
    return _view(svc, tenant, days)
