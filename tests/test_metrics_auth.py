"""/metrics needs a token with the ``stats`` scope (its series name banks, list sources
and statistics labels: which lists a host uses is confidential), unless the operator
sets ``metrics_public``; /healthz and /readyz stay open either way. (Every credential
against /metrics, as against every route: test_api_auth.py.)"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hashguard.domain.people import Role
from hashguard.domain.tokens import Scope
from hashguard.settings import Settings
from hashguard.store import open_store
from hashguard.web.app import create_app
from tests.api_support import assert_problem, bearer, make_token, metric
from tests.server import running_server


def _owned_by(settings: Settings, secret_name: str, user: str, role: Role) -> None:
    """Make the token named ``secret_name`` act for a new person ``user`` of ``role``."""
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        person = store.people.create_user(user, role)
        (token,) = [t for t in store.tokens.list() if t.name == secret_name]
        store.people.set_token_owner(token.id, person.id)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_metrics_need_a_token_with_the_stats_scope(api_settings: Settings) -> None:
    settings = api_settings
    stats = make_token(settings, Scope.STATS, name="prometheus")
    admin = make_token(settings, Scope.ADMIN, name="admin")
    lookup = make_token(settings, Scope.LOOKUP, name="lookup")
    # a stats token that acts for a reviewer: the role may not read statistics
    reviewers = make_token(settings, Scope.STATS, name="reviewers-stats")
    _owned_by(settings, "reviewers-stats", "rita", Role.REVIEWER)
    with running_server(settings) as base, httpx.Client(base_url=base, timeout=30) as http:
        # liveness and readiness stay open
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 200

        anonymous = http.get("/metrics")
        body = assert_problem(anonymous, 401)
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert "missing bearer token" in body["detail"]
        assert "hashguard_" not in anonymous.text  # not a series leaks with the refusal
        unknown = http.get("/metrics", headers=bearer("hgt_" + "u" * 43))
        assert "unknown token" in assert_problem(unknown, 401)["detail"]

        lacking = http.get("/metrics", headers=bearer(lookup))
        assert "lacks the 'stats' scope" in assert_problem(lacking, 403)["detail"]
        assert "hashguard_" not in lacking.text
        role = http.get("/metrics", headers=bearer(reviewers))
        assert "rita (reviewer)" in assert_problem(role, 403)["detail"]

        as_admin = http.get("/metrics", headers=bearer(admin))
        assert as_admin.status_code == 200, as_admin.text
        scraped = http.get("/metrics", headers=bearer(stats))
        assert scraped.status_code == 200, scraped.text
        assert scraped.headers["content-type"].startswith("text/plain")
        families = {f.name for f in text_string_to_metric_families(scraped.text)}
        assert {"hashguard_http_requests", "hashguard_index_entries"} <= families
        # the refusals are counted like any request's (this scrape counts after it answers)
        text = scraped.text
        assert metric(text, "hashguard_http_requests_total", route="/metrics", status="401") == 2
        assert metric(text, "hashguard_http_requests_total", route="/metrics", status="403") == 2
        assert metric(text, "hashguard_http_requests_total", route="/metrics", status="200") == 1
        # refusing a scrape is not an overload, nor any other refusal before work
        assert metric(text, "hashguard_rejected_total", reason="overload") == 0
        assert metric(text, "hashguard_rejected_total", reason="token_limit") == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_metrics_public_opens_metrics_and_nothing_else(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"metrics_public": True})
    with running_server(settings) as base, httpx.Client(base_url=base, timeout=30) as http:
        scraped = http.get("/metrics")
        assert scraped.status_code == 200, scraped.text
        assert "hashguard_http_requests" in {
            f.name for f in text_string_to_metric_families(scraped.text)
        }
        # a token sent along is not asked for, so not checked either
        assert http.get("/metrics", headers=bearer("hgt_" + "u" * 43)).status_code == 200
        assert http.get("/healthz").status_code == 200
        assert_problem(http.get("/v1/stats"), 401)  # the statistics API keeps its token


def test_the_document_says_metrics_need_a_token_unless_public(tmp_path: Path) -> None:
    def operation(public: bool) -> dict[str, Any]:
        settings = Settings(home=tmp_path / "home", metrics_public=public)  # opens nothing
        got: dict[str, Any] = create_app(settings).openapi()["paths"]["/metrics"]["get"]
        return got

    guarded = operation(public=False)
    assert guarded["security"] == [{"bearer": []}]
    assert {"200", "401", "403"} <= set(guarded["responses"])
    public = operation(public=True)
    assert "security" not in public
    assert not {"401", "403"} & set(public["responses"])


def test_metrics_public_is_off_unless_the_operator_sets_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HASHGUARD_METRICS_PUBLIC", raising=False)
    monkeypatch.delenv("HASHGUARD_CONFIG", raising=False)
    assert Settings(home=tmp_path).metrics_public is False
    monkeypatch.setenv("HASHGUARD_METRICS_PUBLIC", "true")
    assert Settings(home=tmp_path).metrics_public is True
