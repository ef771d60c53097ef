"""Shapes of /v1/tenant: a tenant's own quota and use, never another's."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel

from hashguard.domain.tenants import TenantUsage
from hashguard.domain.tokens import Token


class QuotaOut(BaseModel):
    per_day: int
    rate_per_second: float | None


class TodayOut(BaseModel):
    day: date
    hashes: int
    remaining: int
    resets_at: datetime


class DayOut(BaseModel):
    """One UTC day: calls answered, hashes counted against the quota, hashes that matched."""

    day: date
    calls: int
    hashes: int
    matched: int


class TenantTokenOut(BaseModel):
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TenantOut(BaseModel):
    name: str
    state: str
    quota: QuotaOut
    today: TodayOut
    days: list[DayOut]
    tokens: list[TenantTokenOut]

    @classmethod
    def of(cls, usage: TenantUsage, tokens: list[Token]) -> TenantOut:
        tenant = usage.tenant
        return cls(
            name=tenant.name,
            state=str(tenant.state),
            quota=QuotaOut(per_day=tenant.quota_per_day, rate_per_second=tenant.rate_per_second),
            today=TodayOut(
                day=usage.today,
                hashes=usage.used_today,
                remaining=usage.remaining_today,
                resets_at=usage.resets_at,
            ),
            days=[
                DayOut(day=d.day, calls=d.calls, hashes=d.hashes, matched=d.matched)
                for d in usage.days
            ],
            tokens=[
                TenantTokenOut(
                    id=t.id,
                    name=t.name,
                    created_at=t.created_at,
                    last_used_at=t.last_used_at,
                    revoked_at=t.revoked_at,
                )
                for t in tokens
            ],
        )
