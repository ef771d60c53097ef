"""Tenants of a hash check service: the organisations one hashguard answers lookups for,
their daily quotas and rate limits, and what each may see of its own use."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

#: Tenant names are persisted identifiers (they appear in audit actors): lowercase.
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
_QUOTA = re.compile(r"^\s*(\d+)\s*(?:/\s*(?:day|d))?\s*$")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(?:s|sec|second))?\s*$")


class TenantState(StrEnum):
    """Persisted: a suspended tenant's tokens are refused until it is resumed."""

    ACTIVE = "active"
    SUSPENDED = "suspended"


@dataclass(frozen=True, kw_only=True, slots=True)
class Tenant:
    id: int
    name: str
    contact: str
    #: distinct hashes it may look up per UTC day
    quota_per_day: int
    #: hashes a second (a token bucket with a burst of one batch); None: the server's default
    rate_per_second: float | None
    state: TenantState
    created_at: datetime
    updated_at: datetime

    @property
    def active(self) -> bool:
        return self.state is TenantState.ACTIVE


@dataclass(frozen=True, kw_only=True, slots=True)
class TenantDay:
    """One UTC day of a tenant's lookups: calls answered, hashes counted against the
    quota, and those that matched something."""

    day: date
    calls: int
    hashes: int
    matched: int


def parse_quota(text: str) -> int:
    """``100000/day`` (or a bare number) as hashes a day; ``ValueError`` otherwise."""
    found = _QUOTA.match(text)
    if not found or int(found.group(1)) <= 0:
        raise ValueError(
            f"{text!r} is not a quota: expected a positive number a day, e.g. 100000/day"
        )
    return int(found.group(1))


def parse_rate(text: str) -> float:
    """``50/s`` (or a bare number) as hashes a second; ``ValueError`` otherwise."""
    found = _RATE.match(text)
    if not found or float(found.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a rate: expected a positive number a second, e.g. 50/s")
    return float(found.group(1))


def utc_day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def next_day(at: datetime) -> datetime:
    """The start of the UTC day after ``at``: when a daily quota starts again."""
    return datetime.combine(utc_day(at) + timedelta(days=1), time(), tzinfo=UTC)


def seconds_to_next_day(at: datetime) -> int:
    """Whole seconds (at least 1) until the quota of ``at``'s UTC day is renewed."""
    return max(1, int((next_day(at) - at).total_seconds() + 0.999))


def tenant_to_json(tenant: Tenant) -> dict[str, Any]:
    """A tenant as listings and audit entries show it."""
    return {
        "id": tenant.id,
        "name": tenant.name,
        "contact": tenant.contact,
        "quota_per_day": tenant.quota_per_day,
        "rate_per_second": tenant.rate_per_second,
        "state": str(tenant.state),
        "created_at": tenant.created_at.isoformat(),
        "updated_at": tenant.updated_at.isoformat(),
    }


def day_to_json(day: TenantDay) -> dict[str, Any]:
    return {
        "day": day.day.isoformat(),
        "calls": day.calls,
        "hashes": day.hashes,
        "matched": day.matched,
    }


@dataclass(frozen=True, kw_only=True, slots=True)
class TenantUsage:
    """What a tenant may see of itself: its quota, today's use, its recent days."""

    tenant: Tenant
    today: date
    used_today: int
    resets_at: datetime
    days: tuple[TenantDay, ...]

    @property
    def remaining_today(self) -> int:
        return max(0, self.tenant.quota_per_day - self.used_today)


def usage_to_json(usage: TenantUsage, *, tokens: list[dict[str, Any]]) -> dict[str, Any]:
    """A tenant's own view (``GET /v1/tenant``, ``tenants show --json``)."""
    tenant = usage.tenant
    return {
        "name": tenant.name,
        "state": str(tenant.state),
        "contact": tenant.contact,
        "quota": {"per_day": tenant.quota_per_day, "rate_per_second": tenant.rate_per_second},
        "today": {
            "day": usage.today.isoformat(),
            "hashes": usage.used_today,
            "remaining": usage.remaining_today,
            "resets_at": usage.resets_at.isoformat(),
        },
        "days": [day_to_json(d) for d in usage.days],
        "tokens": tokens,
    }
