"""Tenant changes of the hash check service, each committed with its audit entry
(``tenant.added``, ``tenant.suspended``, ``tenant.resumed``) in one transaction."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from hashguard.audit import record
from hashguard.domain.audit import AuditAction
from hashguard.domain.tenants import (
    NAME_PATTERN,
    Tenant,
    TenantState,
    TenantUsage,
    next_day,
    tenant_to_json,
    utc_day,
)
from hashguard.store import Store


class InvalidTenant(ValueError):
    pass


def subject(name: str) -> str:
    """A tenant as the audit log names it."""
    return f"tenant:{name}"


def add_tenant(
    store: Store,
    actor: str,
    name: str,
    *,
    contact: str,
    quota_per_day: int,
    rate_per_second: float | None = None,
) -> Tenant:
    """A new, active tenant (``tenant.added``). Raises ``InvalidTenant``, ``TenantExists``."""
    if re.fullmatch(NAME_PATTERN, name) is None:
        raise InvalidTenant(
            f"{name!r} is not a tenant name: lowercase letters, digits, '.', '_' and '-'"
        )
    if "@" not in contact or any(c.isspace() for c in contact):
        raise InvalidTenant(f"{contact!r} is not an e-mail address")
    if quota_per_day <= 0 or (rate_per_second is not None and rate_per_second <= 0):
        raise InvalidTenant("the quota and the rate must be positive")
    with store.atomic() as unit:
        tenant = unit.tenants.create(
            name, contact=contact, quota_per_day=quota_per_day, rate_per_second=rate_per_second
        )
        record(unit, actor, AuditAction.TENANT_ADDED, subject(name), **tenant_to_json(tenant))
    return tenant


def set_tenant_state(store: Store, actor: str, name: str, state: TenantState) -> Tenant:
    """Suspend (its tokens are refused at once, on every server within the token cache
    time) or resume a tenant; audited only when the state changes. Raises
    ``UnknownTenant``."""
    action = (
        AuditAction.TENANT_SUSPENDED
        if state is TenantState.SUSPENDED
        else AuditAction.TENANT_RESUMED
    )
    with store.atomic() as unit:
        tenant, changed = unit.tenants.set_state(name, state)
        if changed:
            record(unit, actor, action, subject(name), state=str(state))
    return tenant


def tenant_usage(store: Store, tenant: Tenant, *, now: datetime, days: int = 30) -> TenantUsage:
    """``tenant``'s quota, today's use and its last ``days`` UTC days (as of ``now``)."""
    today = utc_day(now)
    recent = store.tenants.days(tenant.id, today - timedelta(days=days - 1))
    used = next((d.hashes for d in recent if d.day == today), 0)
    return TenantUsage(
        tenant=tenant, today=today, used_today=used, resets_at=next_day(now), days=tuple(recent)
    )
