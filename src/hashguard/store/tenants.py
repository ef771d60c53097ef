"""Tenant persistence: the tenants of the hash check service and their daily use.

A tenant's quota is counted on one row per UTC day with a single conditional update
(``hashes + n <= quota``): PostgreSQL re-checks that condition on the row it locked,
so concurrent calls on any number of servers never count past the quota; SQLite
serialises writers anyway.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, Engine, Row, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hashguard.domain.stats import Metric
from hashguard.domain.tenants import Tenant, TenantDay, TenantState
from hashguard.store._util import now, stamp
from hashguard.store.schema import tenant_usage, tenants
from hashguard.store.stats import count


class UnknownTenant(LookupError):
    pass


class TenantExists(ValueError):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class Charge:
    """What counting a call against a quota found: ``allowed`` (then counted), the
    hashes counted that day (with this call if allowed) and, when refused, whether this
    is the day's first refusal."""

    allowed: bool
    used: int
    first_refusal: bool = False


def _tenant(row: Row[Any]) -> Tenant:
    return Tenant(
        id=row.id,
        name=row.name,
        contact=row.contact,
        quota_per_day=row.quota_per_day,
        rate_per_second=row.rate_per_second,
        state=TenantState(row.state),
        created_at=stamp(row.created_at),
        updated_at=stamp(row.updated_at),
    )


def _ensure_day(conn: Connection, tenant_id: int, day: date) -> None:
    values = {
        "tenant_id": tenant_id,
        "day": day,
        "calls": 0,
        "hashes": 0,
        "matched": 0,
        "refused": 0,
    }
    if conn.dialect.name == "postgresql":
        conn.execute(pg_insert(tenant_usage).values(**values).on_conflict_do_nothing())
    else:
        conn.execute(sqlite_insert(tenant_usage).values(**values).on_conflict_do_nothing())


def _name(conn: Connection, tenant_id: int) -> str:
    return str(conn.execute(select(tenants.c.name).where(tenants.c.id == tenant_id)).scalar_one())


def _day_row(tenant_id: int, day: date) -> Any:
    return (tenant_usage.c.tenant_id == tenant_id) & (tenant_usage.c.day == day)


class TenantStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(
        self, name: str, *, contact: str, quota_per_day: int, rate_per_second: float | None
    ) -> Tenant:
        """A new, active tenant. Raises ``TenantExists``."""
        at = now()
        with self._engine.begin() as conn:
            if conn.execute(select(tenants.c.id).where(tenants.c.name == name)).first():
                raise TenantExists(f"a tenant named {name!r} exists already")
            tenant_id = conn.execute(
                insert(tenants)
                .values(
                    name=name,
                    contact=contact,
                    quota_per_day=quota_per_day,
                    rate_per_second=rate_per_second,
                    state=str(TenantState.ACTIVE),
                    created_at=at,
                    updated_at=at,
                )
                .returning(tenants.c.id)
            ).scalar_one()
        return self.get(tenant_id)

    def get(self, tenant_id: int) -> Tenant:
        with self._engine.connect() as conn:
            row = conn.execute(select(tenants).where(tenants.c.id == tenant_id)).first()
        if row is None:
            raise UnknownTenant(f"no tenant #{tenant_id}")
        return _tenant(row)

    def named(self, name: str) -> Tenant:
        """Raises ``UnknownTenant``."""
        with self._engine.connect() as conn:
            row = conn.execute(select(tenants).where(tenants.c.name == name)).first()
        if row is None:
            raise UnknownTenant(f"no tenant named {name!r}")
        return _tenant(row)

    def list(self) -> list[Tenant]:
        with self._engine.connect() as conn:
            return [_tenant(r) for r in conn.execute(select(tenants).order_by(tenants.c.name))]

    def set_state(self, name: str, state: TenantState) -> tuple[Tenant, bool]:
        """The tenant in ``state`` and whether it changed. Raises ``UnknownTenant``."""
        with self._engine.begin() as conn:
            done = conn.execute(
                update(tenants)
                .where(tenants.c.name == name, tenants.c.state != str(state))
                .values(state=str(state), updated_at=now())
            )
        return self.named(name), done.rowcount > 0

    def charge(
        self, tenant_id: int, day: date, hashes: int, quota: int, *, tenant: str | None = None
    ) -> Charge:
        """Count one call of ``hashes`` against ``quota`` for ``day``, all or nothing.
        An allowed call is also counted in the statistics (``lookups``, labelled with
        the tenant's name, ``tenant`` if the caller has it) in the same transaction, so
        the metric always equals the day rows' ``hashes`` (``stats verify`` recounts it
        from them)."""
        counted = (
            update(tenant_usage)
            .where(_day_row(tenant_id, day), tenant_usage.c.hashes + hashes <= quota)
            .values(hashes=tenant_usage.c.hashes + hashes, calls=tenant_usage.c.calls + 1)
            .returning(tenant_usage.c.hashes)
        )
        with self._engine.begin() as conn:
            used = conn.execute(counted).scalar()
            if (
                used is None
                and not conn.execute(
                    select(tenant_usage.c.tenant_id).where(_day_row(tenant_id, day))
                ).first()
            ):  # the day's first call: its row, then the same update
                _ensure_day(conn, tenant_id, day)
                used = conn.execute(counted).scalar()
            if used is not None:
                if hashes:
                    name = tenant if tenant is not None else _name(conn, tenant_id)
                    count(conn, Metric.LOOKUPS, day=day, n=hashes, tenant=name)
                return Charge(allowed=True, used=int(used))
            row = conn.execute(
                update(tenant_usage)
                .where(_day_row(tenant_id, day))
                .values(refused=tenant_usage.c.refused + 1)
                .returning(tenant_usage.c.hashes, tenant_usage.c.refused)
            ).one()
        return Charge(allowed=False, used=int(row.hashes), first_refusal=row.refused == 1)

    def refund(self, tenant_id: int, day: date, hashes: int, *, tenant: str | None = None) -> None:
        """Undo a ``charge`` whose call was not answered (nothing was looked up), and
        its ``lookups`` count, in one transaction."""
        with self._engine.begin() as conn:
            conn.execute(
                update(tenant_usage)
                .where(_day_row(tenant_id, day))
                .values(hashes=tenant_usage.c.hashes - hashes, calls=tenant_usage.c.calls - 1)
            )
            if hashes:
                name = tenant if tenant is not None else _name(conn, tenant_id)
                count(conn, Metric.LOOKUPS, day=day, n=-hashes, tenant=name)

    def add_matched(self, tenant_id: int, day: date, matched: int) -> None:
        """Count hashes of an answered call that matched something."""
        if matched <= 0:
            return
        with self._engine.begin() as conn:
            _ensure_day(conn, tenant_id, day)
            conn.execute(
                update(tenant_usage)
                .where(_day_row(tenant_id, day))
                .values(matched=tenant_usage.c.matched + matched)
            )

    def days(self, tenant_id: int, since: date) -> builtins.list[TenantDay]:
        """The tenant's days from ``since`` on, newest first (days without a call absent)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(tenant_usage)
                .where(tenant_usage.c.tenant_id == tenant_id, tenant_usage.c.day >= since)
                .order_by(tenant_usage.c.day.desc())
            )
            return [
                TenantDay(day=r.day, calls=r.calls, hashes=r.hashes, matched=r.matched)
                for r in rows
            ]

    def all_days(self, since: date, until: date) -> builtins.list[tuple[str, TenantDay]]:
        """Every tenant's days from ``since`` to ``until`` (inclusive), by tenant name then
        day: the service's numbers per tenant and in aggregate (the statistics' source
        for tenants; the hotline sees who found matches and how many, nothing more)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(tenants.c.name, tenant_usage)
                .join(tenants, tenants.c.id == tenant_usage.c.tenant_id)
                .where(tenant_usage.c.day >= since, tenant_usage.c.day <= until)
                .order_by(tenants.c.name, tenant_usage.c.day)
            )
            return [
                (r.name, TenantDay(day=r.day, calls=r.calls, hashes=r.hashes, matched=r.matched))
                for r in rows
            ]

    def used(self, tenant_id: int, day: date) -> int:
        with self._engine.connect() as conn:
            value = conn.execute(
                select(tenant_usage.c.hashes).where(_day_row(tenant_id, day))
            ).scalar()
        return int(value or 0)
