"""Tenants on the hash check service over real HTTP: a daily quota per tenant (429 with a
Retry-After to the next UTC day, counted once per distinct hash, refunded when nothing
was answered), a rate limit per tenant, the tenant's own view, and isolation (a tenant's
token sees nothing of another tenant's, an unbound token no tenant view)."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from hashguard.domain.audit import AuditAction
from hashguard.domain.stats import Period
from hashguard.domain.tenants import TenantState
from hashguard.domain.tokens import Scope
from hashguard.services.tenants import add_tenant, set_tenant_state
from hashguard.services.tokens import create_token
from hashguard.settings import Settings
from hashguard.stats.feed import build_feed
from hashguard.stats.verify import verify
from hashguard.store import open_store
from hashguard.store.audit import AuditEvent
from tests.api_support import assert_problem, bearer, make_token, wait_until
from tests.server import running_server

#: a made-up "listed" MD5 and hashes that are not listed
LISTED = "0" * 31 + "1"
START = datetime(2031, 3, 14, 23, 0, tzinfo=UTC)

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


class Clock:
    """The server's clock, set by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _md5(*values: str) -> dict[str, Any]:
    return {"hashes": [{"algorithm": "md5", "hash": v} for v in values]}


def _unlisted(count: int, start: int = 100) -> list[str]:
    return [f"{n:032x}" for n in range(start, start + count)]


def _tenants(settings: Settings, **quotas: tuple[int, float | None]) -> dict[str, str]:
    """Tenants with one lookup token each (made before the server sees them)."""
    secrets = {}
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        for name, (quota, rate) in quotas.items():
            add_tenant(
                store, "cli:t", name, contact=f"ops@{name}.test", quota_per_day=quota,
                rate_per_second=rate,
            )  # fmt: skip
            secrets[name] = create_token(store, "cli:t", f"{name}-1", [Scope.LOOKUP], tenant=name)[
                1
            ]
    return secrets


def _listed(http: httpx.Client, admin: dict[str, str]) -> None:
    assert http.post("/v1/banks", json={"name": "known"}, headers=admin).status_code == 201
    added = http.post(
        "/v1/banks/known/entries",
        json={"entries": [{"algorithm": "md5", "hash": LISTED}]},
        headers=admin,
    )
    assert added.status_code == 200, added.text
    wait_until(
        lambda: http.post("/v1/lookup", json=_md5(LISTED), headers=admin),
        lambda answer: bool(answer.json()["results"][0]["matches"]),
    )


def _events(settings: Settings, *actions: AuditAction) -> list[AuditEvent]:
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        return [e for e in store.audit.events() if e.action in actions]


def test_quota_view_audit_and_isolation(api_settings: Settings) -> None:
    settings = api_settings
    secrets = _tenants(settings, a=(10, None), b=(1_000, None))
    a, b = bearer(secrets["a"]), bearer(secrets["b"])
    admin = bearer(make_token(settings, Scope.ADMIN, name="hotline"))
    unbound = bearer(make_token(settings, Scope.LOOKUP, name="operator-lookup"))
    clock = Clock(START)
    with running_server(settings, clock=clock) as base, httpx.Client(base_url=base) as http:
        _listed(http, admin)
        # 6 distinct valid hashes (a repeat and an invalid one are not counted), 1 listed
        batch = _md5(LISTED, LISTED, *_unlisted(5), "not-a-hash")
        answer = http.post("/v1/lookup", json=batch, headers=a)
        assert answer.status_code == 200, answer.text
        assert [bool(r["matches"]) for r in answer.json()["results"]][:2] == [True, True]
        view = http.get("/v1/tenant", headers=a).json()
        assert view["today"] == {
            "day": "2031-03-14",
            "hashes": 6,
            "remaining": 4,
            "resets_at": "2031-03-15T00:00:00Z",
        }
        assert view["days"] == [{"day": "2031-03-14", "calls": 1, "hashes": 6, "matched": 1}]
        assert [t["name"] for t in view["tokens"]] == ["a-1"]

        # over the quota: refused whole, with when it renews and which quota it is
        over = http.post("/v1/lookup", json=_md5(*_unlisted(5, 200)), headers=a)
        problem = assert_problem(over, 429)
        assert over.headers["retry-after"] == str(3600)  # 23:00 -> 00:00 UTC
        assert "10 hashes a UTC day" in problem["detail"]
        assert "results" not in over.json()
        assert_problem(http.post("/v1/lookup", json=_md5(*_unlisted(5, 300)), headers=a), 429)
        # what is left still fits; tenant b is not touched by a's quota
        assert http.post("/v1/lookup", json=_md5(*_unlisted(4, 400)), headers=a).status_code == 200
        assert http.post("/v1/lookup", json=_md5(*_unlisted(50)), headers=b).status_code == 200
        assert http.get("/v1/tenant", headers=a).json()["today"]["remaining"] == 0
        clock.at = START + timedelta(hours=1, seconds=1)  # the next UTC day
        assert http.post("/v1/lookup", json=_md5(*_unlisted(10)), headers=a).status_code == 200
        days = http.get("/v1/tenant", headers=a).json()["days"]
        assert [(d["day"], d["hashes"]) for d in days] == [("2031-03-15", 10), ("2031-03-14", 10)]

        # isolation: another tenant's view is 404 like a tenant that does not exist
        theirs = assert_problem(http.get("/v1/tenants/b", headers=a), 404)
        nobody = assert_problem(http.get("/v1/tenants/nobody", headers=a), 404)
        assert {k: v for k, v in theirs.items() if k != "request_id"} == {
            k: v for k, v in nobody.items() if k != "request_id"
        }
        assert http.get("/v1/tenants/a", headers=a).json()["name"] == "a"
        assert http.get("/v1/whoami", headers=a).json()["tenant"] == "a"
        assert http.get("/v1/whoami", headers=unbound).json()["tenant"] is None
        b_view = http.get("/v1/tenant", headers=b).json()
        assert (b_view["name"], b_view["today"]["hashes"]) == ("b", 0)  # b's day is the 15th now
        assert [(d["hashes"], d["matched"]) for d in b_view["days"]] == [(50, 0)]
        # a tenant's token reads no cases, banks or runs (its scope is lookup alone)
        for path in ("/v1/cases", "/v1/cases/1", "/v1/banks", "/v1/runs"):
            assert http.get(path, headers=a).status_code == 403, path
        # a token of no tenant has no tenant view; the hotline's admin token sees any
        assert_problem(http.get("/v1/tenant", headers=unbound), 404)
        assert_problem(http.get("/v1/tenants/a", headers=unbound), 404)
        assert http.get("/v1/tenants/a", headers=admin).json()["today"]["hashes"] == 10

    matched = _events(settings, AuditAction.LOOKUP_MATCHED)
    (event,) = matched
    assert event.actor.endswith("/tenant:a")
    assert event.actor.startswith("token:")
    assert event.subject == "tenant:a"
    assert event.details == {
        "tenant": "a",
        "day": "2031-03-14",
        "hashes": 6,
        "matched": 1,
        "banks": {"known": 1},
        "by_source": [["", "", 1]],
    }
    assert LISTED not in str(event.details)  # never a hash in the log
    (reached,) = _events(settings, AuditAction.TENANT_QUOTA_REACHED)  # once a day
    assert (reached.subject, reached.details["used"], reached.details["quota_per_day"]) == (
        "tenant:a",
        6,
        10,
    )


def test_rate_limit_per_tenant_and_suspension(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"lookup_max_batch": 4})
    secrets = _tenants(settings, slow=(1_000, 1.0), other=(1_000, 1.0))
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        second = create_token(store, "cli:t", "slow-2", [Scope.LOOKUP], tenant="slow")[1]
        add_tenant(store, "cli:t", "gone", contact="ops@gone.test", quota_per_day=10)
        gone = create_token(store, "cli:t", "gone-1", [Scope.LOOKUP], tenant="gone")[1]
        set_tenant_state(store, "cli:t", "gone", TenantState.SUSPENDED)
    clock = Clock(START)
    with running_server(settings, clock=clock) as base, httpx.Client(base_url=base) as http:

        def lookup(secret: str, count: int, start: int = 0) -> httpx.Response:
            return http.post(
                "/v1/lookup", json=_md5(*_unlisted(count, start)), headers=bearer(secret)
            )

        assert lookup(secrets["slow"], 4).status_code == 200  # the burst: one batch
        # the tenant's second token shares its bucket
        refused = lookup(second, 2, 10)
        body = assert_problem(refused, 429)
        assert body["title"] == "Too many requests for this tenant"
        assert refused.headers["retry-after"] == "2"
        assert lookup(secrets["other"], 4).status_code == 200  # another tenant's own bucket
        clock.at += timedelta(seconds=2)
        assert lookup(second, 2, 10).status_code == 200
        # refused calls were not counted against the quota
        view = http.get("/v1/tenant", headers=bearer(second)).json()
        assert (view["today"]["hashes"], view["days"][0]["calls"]) == (6, 2)

        suspended = assert_problem(lookup(gone, 1), 403)
        assert "suspended" in suspended["detail"]


def test_service_numbers_per_tenant_and_in_aggregate(api_settings: Settings) -> None:
    """The service's numbers: lookups per tenant counted with the quota (and uncounted
    when refunded), matches per list source and category with the audit event; the
    hotline's admin token groups them by tenant, a tenant's token reads no statistics,
    ``stats verify`` recounts them, and the aggregate feed never names a tenant."""
    settings = api_settings
    secrets = _tenants(settings, alpha_host=(1_000, None), beta_host=(1_000, None))
    a, b = bearer(secrets["alpha_host"]), bearer(secrets["beta_host"])
    admin = bearer(make_token(settings, Scope.ADMIN, name="hotline"))
    clock = Clock(START)
    with running_server(settings, clock=clock) as base, httpx.Client(base_url=base) as http:
        _listed(http, admin)
        assert http.post("/v1/lookup", json=_md5(LISTED, *_unlisted(5)), headers=a).is_success
        assert http.post("/v1/lookup", json=_md5(LISTED, *_unlisted(2)), headers=b).is_success
        assert http.post("/v1/lookup", json=_md5(*_unlisted(3, 900)), headers=b).is_success
        by_tenant = http.get(
            "/v1/stats",
            params={"since": "2000-01-01", "until": "2099-12-31", "by": "tenant"},
            headers=admin,
        )
        assert by_tenant.status_code == 200, by_tenant.text
        rows = {
            r["key"]["tenant"]: (r["counts"]["lookups"], r["counts"]["lookup_matches"])
            for r in by_tenant.json()["rows"]
            if r["key"]["tenant"]
        }
        assert rows == {"alpha_host": (6, 1), "beta_host": (6, 1)}
        assert http.get("/v1/stats", headers=a).status_code == 403  # a tenant reads none

    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        checked = verify(store, date(2000, 1, 1), date(2099, 12, 31))
        assert checked.ok, checked.differences
        # a refunded call is uncounted in its own transaction
        tenant = store.tenants.named("alpha_host")
        assert store.tenants.charge(tenant.id, START.date(), 4, 1_000).allowed
        store.tenants.refund(tenant.id, START.date(), 4)
        assert verify(store, date(2000, 1, 1), date(2099, 12, 31)).ok
        every = Period(date(2000, 1, 1), date(2099, 12, 31), "2000")
        feed = build_feed(store.stats, every, k=1, at=START)
        tables = feed["tables"]
        assert tables["hosts_served"]["total"] == 2
        assert tables["lookups"]["total"] == 12
        assert tables["lookup_matches"]["cells"] == [
            {"key": {"source": "", "category": ""}, "count": 2, "suppressed": False}
        ]
        assert "alpha_host" not in str(feed)
        assert "beta_host" not in str(feed)
        # across tenants: under k hosts, the number of hosts is not published
        small = build_feed(store.stats, every, k=3, at=START)["tables"]
        assert small["hosts_served"]["total_suppressed"] is True
