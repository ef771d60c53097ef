"""Tenants on the hash check service: each lookup call of a tenant's token passes the
tenant's rate limit and daily quota, and is counted on the tenant's own day row.

A tenant's quota is counted in distinct valid hashes per UTC day (``store.tenants``),
before the lookup: a call over the quota is refused whole (429, Retry-After to the next
UTC day, a problem naming the quota), never answered in part or with an empty answer.
A call that is then not answered (the index not loaded, the store down, refused for
probing) is refunded. Nothing here is shared between tenants: each has its own bucket,
its own row, its own cached settings.

Statistics: the call's hashes are counted (``lookups``) in the charge's transaction and
uncounted in the refund's; its matches per list source and category
(``lookup_matches``) in the transaction of its ``lookup.matched`` audit event
(``store.stats_events``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date, datetime

from hashguard.audit import record, token_actor
from hashguard.domain.audit import AuditAction
from hashguard.domain.tenants import Tenant, seconds_to_next_day, utc_day
from hashguard.domain.tokens import Token
from hashguard.store import Store
from hashguard.web.limits import TenantLimiter
from hashguard.web.problems import ProblemError

#: a tenant's settings (quota, rate) are read from the store at most this often
CACHE_SECONDS = 2.0


class TenantDirectory:
    """Tenants by name, read from the store and kept ``CACHE_SECONDS``."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[Tenant, float]] = {}

    def get(self, name: str) -> Tenant:
        now = time.monotonic()
        with self._lock:
            known = self._cache.get(name)
        if known is not None and known[1] > now:
            return known[0]
        tenant = self._store.tenants.named(name)
        with self._lock:
            self._cache[name] = (tenant, now + CACHE_SECONDS)
        return tenant


class Charged:
    """A tenant's call counted against its quota: ``refund`` it if it is not answered,
    ``answered`` it with how many of its hashes matched."""

    def __init__(self, store: Store, tenant: Tenant, day: date, hashes: int) -> None:
        self._store = store
        self.tenant = tenant
        self.day = day
        self.hashes = hashes
        self._open = True

    def refund(self) -> None:
        if self._open and self.hashes:
            self._open = False
            self._store.tenants.refund(
                self.tenant.id, self.day, self.hashes, tenant=self.tenant.name
            )

    def answered(self, matched: int) -> None:
        self._open = False
        self._store.tenants.add_matched(self.tenant.id, self.day, matched)


def admit(
    *,
    store: Store,
    directory: TenantDirectory,
    rates: TenantLimiter,
    clock: Callable[[], datetime],
    token: Token,
    submitted: int,
    distinct: int,
) -> Charged | None:
    """Pass a tenant token's call of ``submitted`` hashes (``distinct`` valid ones)
    through its tenant's rate limit and quota; None for a token of no tenant. Raises
    the 429 problem (audited once a day when the quota is reached)."""
    if token.tenant is None:
        return None
    tenant = directory.get(token.tenant)
    if tenant.rate_per_second is not None:
        rates.take(tenant.id, tenant.rate_per_second, submitted)
    now = clock()
    day = utc_day(now)
    if distinct == 0:
        return Charged(store, tenant, day, 0)
    charge = store.tenants.charge(
        tenant.id, day, distinct, tenant.quota_per_day, tenant=tenant.name
    )
    if charge.allowed:
        return Charged(store, tenant, day, distinct)
    if charge.first_refusal:
        record(
            store,
            token_actor(token),
            AuditAction.TENANT_QUOTA_REACHED,
            f"tenant:{tenant.name}",
            tenant=tenant.name,
            day=day.isoformat(),
            quota_per_day=tenant.quota_per_day,
            used=charge.used,
            refused_hashes=distinct,
        )
    raise ProblemError(
        429,
        "Daily quota exceeded",
        f"tenant {tenant.name} may look up {tenant.quota_per_day} hashes a UTC day "
        f"(quota_per_day={tenant.quota_per_day}); {charge.used} are used on {day.isoformat()} "
        f"and this call has {distinct} more; the quota renews at 00:00 UTC",
        {"Retry-After": str(seconds_to_next_day(now))},
    )
