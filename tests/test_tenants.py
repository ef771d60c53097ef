"""Tenants of the hash check service at the store level (both engines), the quota counted
atomically under concurrency (PostgreSQL), the probing budget per tenant, and the
``hashguard tenants`` commands in process."""

from __future__ import annotations

import contextlib
import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from hashguard.audit import token_actor, verify
from hashguard.cli.app import app as cli_app
from hashguard.domain.audit import AuditAction
from hashguard.domain.tenants import (
    TenantState,
    parse_quota,
    parse_rate,
    seconds_to_next_day,
)
from hashguard.domain.tokens import Scope
from hashguard.services import tenants as service
from hashguard.services.tokens import TenantTokenRefused, create_token
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from hashguard.store.tenants import TenantExists, UnknownTenant
from hashguard.web.probing import ProbeGuard
from tests.cli import hashguard

DAY = date(2031, 3, 14)


def _actions(store: Store) -> list[str]:
    return [str(e.action) for e in store.audit.events()]


def test_tenants_and_their_tokens_with_audit(store: Store) -> None:
    tenant = service.add_tenant(
        store, "cli:hotline", "small-host-42", contact="ops@example.test", quota_per_day=100_000
    )
    assert (tenant.state, tenant.quota_per_day, tenant.rate_per_second) == (
        TenantState.ACTIVE,
        100_000,
        None,
    )
    other = service.add_tenant(
        store,
        "cli:hotline",
        "small-host-7",
        contact="abuse@example.test",
        quota_per_day=10,
        rate_per_second=2.5,
    )
    with pytest.raises(TenantExists):
        service.add_tenant(store, "cli:hotline", "small-host-42", contact="a@b", quota_per_day=1)
    for bad in ({"name": "Small Host"}, {"contact": "nobody"}, {"quota_per_day": 0}):
        args = {"name": "x", "contact": "a@example.test", "quota_per_day": 1} | bad
        with pytest.raises(service.InvalidTenant):
            service.add_tenant(
                store,
                "cli:hotline",
                str(args["name"]),
                contact=str(args["contact"]),
                quota_per_day=int(args["quota_per_day"]),  # type: ignore[call-overload]
            )
    assert [t.name for t in store.tenants.list()] == ["small-host-42", "small-host-7"]
    assert store.tenants.named("small-host-7") == other

    token, _secret, _ = create_token(
        store, "cli:hotline", "scanner", [Scope.LOOKUP], tenant="small-host-42"
    )
    assert token.tenant == "small-host-42"
    assert token_actor(token) == f"token:{token.id}/tenant:small-host-42"
    assert [t.id for t in store.tokens.of_tenant(tenant.id)] == [token.id]
    assert store.tokens.of_tenant(other.id) == []
    with pytest.raises(TenantTokenRefused):  # a tenant never reads the hotline's cases
        create_token(
            store, "cli:hotline", "x", [Scope.LOOKUP, Scope.CASES_READ], tenant="small-host-42"
        )
    with pytest.raises(UnknownTenant):
        create_token(store, "cli:hotline", "x", [Scope.LOOKUP], tenant="nobody")
    before = len(_actions(store))

    suspended = service.set_tenant_state(
        store, "cli:hotline", "small-host-42", TenantState.SUSPENDED
    )
    assert not suspended.active
    assert store.tokens.get(token.id).tenant_suspended
    service.set_tenant_state(store, "cli:hotline", "small-host-42", TenantState.SUSPENDED)
    service.set_tenant_state(store, "cli:hotline", "small-host-42", TenantState.ACTIVE)
    assert not store.tokens.get(token.id).tenant_suspended
    with pytest.raises(UnknownTenant):
        service.set_tenant_state(store, "cli:hotline", "nobody", TenantState.ACTIVE)
    # a change without effect is not audited; nothing failed was
    assert _actions(store)[before:] == ["tenant.suspended", "tenant.resumed"]
    events = list(store.audit.events())
    added = [e for e in events if e.action == AuditAction.TENANT_ADDED]
    assert [(e.subject, e.details["quota_per_day"]) for e in added] == [
        ("tenant:small-host-42", 100_000),
        ("tenant:small-host-7", 10),
    ]
    created = [e for e in events if e.action == AuditAction.TOKEN_CREATED]
    assert created[0].details["tenant"] == "small-host-42"
    assert verify(store.audit.events(), recorded_head=store.audit.head()).ok


def test_a_quota_is_counted_all_or_nothing_per_day(store: Store) -> None:
    tenant = service.add_tenant(store, "cli:t", "t", contact="t@example.test", quota_per_day=10)
    tenants = store.tenants
    first = tenants.charge(tenant.id, DAY, 6, 10)
    assert (first.allowed, first.used) == (True, 6)
    over = tenants.charge(tenant.id, DAY, 5, 10)  # refused whole: nothing counted
    assert (over.allowed, over.used, over.first_refusal) == (False, 6, True)
    assert not tenants.charge(tenant.id, DAY, 5, 10).first_refusal
    assert tenants.charge(tenant.id, DAY, 4, 10).used == 10
    tenants.refund(tenant.id, DAY, 4)  # not answered after all
    tenants.add_matched(tenant.id, DAY, 2)
    assert tenants.used(tenant.id, DAY) == 6
    assert tenants.charge(tenant.id, DAY + timedelta(days=1), 10, 10).allowed  # a new day
    days = tenants.days(tenant.id, DAY - timedelta(days=1))
    assert [(d.day, d.calls, d.hashes, d.matched) for d in days] == [
        (DAY + timedelta(days=1), 1, 10, 0),
        (DAY, 1, 6, 2),
    ]
    assert tenants.days(tenant.id, DAY + timedelta(days=2)) == []
    assert [(name, d.day, d.matched) for name, d in tenants.all_days(DAY, DAY)] == [("t", DAY, 2)]


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_concurrent_calls_never_count_past_the_quota(db_url: str) -> None:
    """16 threads, each its own connection, charge batches of 7 against a quota of 500:
    exactly the allowed batches are counted, and never more than the quota."""
    quota, batch, threads = 500, 7, 16
    setup = open_store(db_url)
    with contextlib.closing(setup):
        tenant = service.add_tenant(
            setup, "cli:t", "busy", contact="b@example.test", quota_per_day=quota
        )
    stores = [open_store(db_url) for _ in range(threads)]
    allowed = [0] * threads
    start = threading.Barrier(threads)

    def hammer(index: int) -> None:
        start.wait()
        for _ in range(12):
            if stores[index].tenants.charge(tenant.id, DAY, batch, quota).allowed:
                allowed[index] += 1

    workers = [threading.Thread(target=hammer, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    used = stores[0].tenants.used(tenant.id, DAY)
    for opened in stores:
        opened.close()
    assert used == sum(allowed) * batch
    assert quota - batch < used <= quota  # 16 x 12 x 7 = 1344 were asked for


def test_the_probing_budget_is_per_tenant_as_well_as_per_token() -> None:
    """Two tokens of one tenant, each within its own budget, share the tenant's: the
    call that takes the tenant over is refused, and neither budget is charged by it."""
    now = [0.0]
    guard = ProbeGuard(radius=16, budget=3, window_seconds=100, memory=100, clock=lambda: now[0])
    anchor = "f" * 64

    def near(bit: int) -> str:
        return f"{int(anchor, 16) ^ (1 << bit):064x}"

    assert not guard.check(1, [(anchor, True)], tenant_id=9).refused
    assert guard.check(1, [(near(1), False), (near(2), False)], tenant_id=9).used == 2
    # token 2 has used nothing, but the tenant has used 2 of 3 (anchors are the tenant's)
    refused = guard.check(2, [(near(3), False), (near(4), False)], tenant_id=9)
    assert (refused.refused, refused.of, refused.alert) == (True, "tenant", True)
    assert not guard.check(2, [(near(3), False)], tenant_id=9).refused  # nothing was charged
    # another tenant's token is not touched by tenant 9's probing
    assert not guard.check(3, [(anchor, True), (near(5), False)], tenant_id=10).refused
    # a token of no tenant keeps the per-token behaviour
    assert guard.check(4, [(anchor, True)]).of == "token"
    now[0] = 200.0  # the window has passed
    assert not guard.check(2, [(near(3), False), (near(6), False)], tenant_id=9).refused


def test_quota_and_rate_syntax() -> None:
    assert parse_quota("100000/day") == parse_quota("100000") == 100_000
    assert parse_rate("50/s") == parse_rate("50") == 50.0
    for bad in ("", "0/day", "-1", "10/hour", "many"):
        with pytest.raises(ValueError, match="quota"):
            parse_quota(bad)
    with pytest.raises(ValueError, match="rate"):
        parse_rate("5/min")
    at = datetime(2031, 3, 14, 23, 59, 30, tzinfo=UTC)
    assert seconds_to_next_day(at) == 30
    assert seconds_to_next_day(at.replace(hour=0, minute=0, second=0)) == 86_400


# -- the CLI -----------------------------------------------------------------------------


def _cli(*args: str, check: int = 0) -> Result:
    result = CliRunner().invoke(cli_app, list(args))
    assert result.exit_code == check, (result.exit_code, result.stdout, result.stderr)
    return result


def test_cli_tenants_and_tenant_tokens(home: Path) -> None:
    # the command's registration, once as an operator runs it
    hashguard(
        "tenants", "add", "small-host-42", "--contact", "ops@example.test", "--quota", "100000/day"
    )
    _cli(
        "tenants",
        "add",
        "small-host-7",
        "--contact",
        "a@example.test",
        "--quota",
        "50",
        "--rate",
        "5/s",
    )
    assert (
        "exists"
        in _cli(
            "tenants", "add", "small-host-7", "--contact", "a@example.test", "--quota", "5", check=2
        ).stderr
    )
    assert (
        "quota"
        in _cli(
            "tenants", "add", "x", "--contact", "a@example.test", "--quota", "5/hour", check=2
        ).stderr
    )
    secret = _cli(
        "tokens", "create", "host-42-scan", "--tenant", "small-host-42", "--scope", "lookup"
    ).stdout.strip()
    assert secret.startswith("hgt_")
    assert (
        "only have the lookup scope"
        in _cli(
            "tokens", "create", "x", "--tenant", "small-host-42", "--scope", "admin", check=2
        ).stderr
    )
    assert (
        "no tenant named"
        in _cli("tokens", "create", "x", "--tenant", "nobody", "--scope", "lookup", check=2).stderr
    )
    listed = json.loads(_cli("tenants", "list", "--json").stdout)
    assert [
        (t["name"], t["quota_per_day"], t["rate_per_second"], t["used_today"]) for t in listed
    ] == [
        ("small-host-42", 100_000, None, 0),
        ("small-host-7", 50, 5.0, 0),
    ]
    assert "100000" in _cli("tenants", "list").stdout
    shown = json.loads(_cli("tenants", "show", "small-host-42", "--json").stdout)
    assert shown["quota"] == {"per_day": 100_000, "rate_per_second": None}
    assert shown["today"]["hashes"] == 0
    assert [t["name"] for t in shown["tokens"]] == ["host-42-scan"]
    assert "#1 host-42-scan" in _cli("tenants", "show", "small-host-42").stdout
    _cli("tenants", "show", "nobody", check=2)
    assert "suspended" in _cli("tenants", "suspend", "small-host-42").stderr
    assert "active" in _cli("tenants", "resume", "small-host-42").stderr
    tokens = json.loads(_cli("tokens", "list", "--json").stdout)
    assert [t["tenant"] for t in tokens] == ["small-host-42"]
    with contextlib.closing(open_store(Settings().resolved_database_url)) as store:
        actions = [str(e.action) for e in store.audit.events()]
    assert actions == [
        "tenant.added",
        "tenant.added",
        "token.created",
        "tenant.suspended",
        "tenant.resumed",
    ]
