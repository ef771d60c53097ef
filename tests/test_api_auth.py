"""The auth matrix: every route of the app against every kind of credential, on both engines."""

from __future__ import annotations

import contextlib
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.people import Role
from hashguard.domain.tokens import Scope
from hashguard.settings import Settings
from hashguard.store import open_store
from hashguard.web.app import create_app
from tests.api_support import assert_problem, bearer, make_token
from tests.server import running_server

#: Routes that answer without a token (documentation, liveness, readiness); /metrics
#: too when ``metrics_public`` is set (test_metrics_auth.py).
PUBLIC = frozenset(
    {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/healthz", "/readyz"}
)

#: The scope each protected route needs (None: any valid token). A new route fails the
#: coverage check until it is added here, so no route can escape the matrix.
REQUIRED: dict[tuple[str, str], Scope | None] = {
    ("POST", "/v1/scan"): Scope.SCAN,
    ("POST", "/v1/lookup"): Scope.LOOKUP,
    ("GET", "/v1/tenant"): Scope.LOOKUP,
    ("GET", "/v1/tenants/{name}"): Scope.LOOKUP,
    ("GET", "/v1/banks"): Scope.BANKS_READ,
    ("GET", "/v1/banks/{name}"): Scope.BANKS_READ,
    ("POST", "/v1/banks"): Scope.BANKS_WRITE,
    ("PATCH", "/v1/banks/{name}"): Scope.BANKS_WRITE,
    ("DELETE", "/v1/banks/{name}"): Scope.BANKS_WRITE,
    ("POST", "/v1/banks/{name}/import"): Scope.BANKS_WRITE,
    ("POST", "/v1/banks/{name}/entries"): Scope.BANKS_WRITE,
    ("POST", "/v1/banks/{name}/entries/remove"): Scope.BANKS_WRITE,
    ("POST", "/v1/runs"): Scope.ADMIN,
    ("GET", "/v1/runs"): Scope.ADMIN,
    ("GET", "/v1/runs/{run_id}"): Scope.ADMIN,
    ("GET", "/v1/cases"): Scope.CASES_READ,
    ("GET", "/v1/cases/{case_id}"): Scope.CASES_READ,
    ("GET", "/v1/cases/{case_id}/statements"): Scope.CASES_READ,
    ("POST", "/v1/cases/{case_id}/decisions"): Scope.CASES_REVIEW,
    ("POST", "/v1/cases/{case_id}/assignee"): Scope.CASES_REVIEW,
    ("POST", "/v1/notices"): Scope.NOTICES,
    ("GET", "/v1/whoami"): None,
    ("POST", "/v1/cases/{case_id}/appeals"): Scope.APPEALS,
    ("GET", "/v1/cases/{case_id}/appeals"): Scope.APPEALS,
    ("GET", "/v1/stats"): Scope.STATS,
    ("GET", "/metrics"): Scope.STATS,
}

BANK = "matrix"
#: the person the case-scoped tokens act for: deciding cases needs a person, and a lead
#: may take every step (the roles themselves: test_api_cases.py)
LEAD = "matrix-lead"
#: the person every other token acts for: a token never does more than its person, and
#: only an admin may use the bank, scan, lookup and admin scopes (test_api_roles.py)
ADMIN = "matrix-admin"
CASE_SCOPES = (Scope.CASES_READ, Scope.CASES_REVIEW)
MD5 = "0123456789abcdef0123456789abcdef"
PHOTO = encode(generate(Kind.PHOTO, seed=3, width=64, height=48))

Route = tuple[str, str]
Request = tuple[str, dict[str, Any]]


def app_routes(app: FastAPI) -> set[Route]:
    """Every (method, path template) the app serves; HEAD rides along with GET."""
    routes = set()
    for context in iter_route_contexts(app.routes):
        if context.path == "/ui" or context.path.startswith("/ui/"):
            continue  # the review UI: sessions and roles, see test_ui_roles.py
        if context.path == "/notice" or context.path.startswith("/notice/"):
            continue  # the public notice form: CSRF and rate limits, see test_notices.py
        unknown = f"{context.original_route!r} is not an HTTP route: extend the auth matrix"
        assert context.methods, unknown
        assert context.path, unknown
        routes |= {(method, context.path) for method in context.methods - {"HEAD"}}
    return routes


def protected_routes(app: FastAPI) -> list[Route]:
    """The routes that need a token, deletes last (so the other routes meet the bank)."""
    routes = {route for route in app_routes(app) if route[1] not in PUBLIC}
    return sorted(routes, key=lambda route: (route[0] == "DELETE", route[1], route[0]))


def requests_for(root: Path) -> dict[Route, tuple[Request, Request]]:
    """Per route: a cheap valid request, and one that fails validation in every way it can."""
    entries = {"entries": [{"algorithm": "md5", "hash": MD5}]}
    bank = f"/v1/banks/{BANK}"
    too_long = "/v1/banks/" + "n" * 101
    return {
        ("POST", "/v1/scan"): (
            ("/v1/scan", {"content": PHOTO}),
            ("/v1/scan", {"content": PHOTO, "params": {"content_id": "c" * 501}}),
        ),
        ("POST", "/v1/lookup"): (
            ("/v1/lookup", {"json": {"hashes": [{"algorithm": "md5", "hash": MD5}]}}),
            ("/v1/lookup", {"json": {"hashes": []}}),
        ),
        # no token of the matrix belongs to a tenant: an allowed request is a 404
        ("GET", "/v1/tenant"): (("/v1/tenant", {}), ("/v1/tenant", {"params": {"days": 0}})),
        ("GET", "/v1/tenants/{name}"): (
            ("/v1/tenants/nobody", {}),
            ("/v1/tenants/" + "n" * 101, {"params": {"days": 0}}),
        ),
        ("GET", "/v1/banks"): (("/v1/banks", {}), ("/v1/banks", {"params": {"x": "1"}})),
        ("GET", "/v1/whoami"): (("/v1/whoami", {}), ("/v1/whoami", {"params": {"x": "1"}})),
        ("GET", "/v1/banks/{name}"): ((bank, {}), (too_long, {})),
        ("POST", "/v1/banks"): (
            ("/v1/banks", {"json": {"name": BANK}}),
            ("/v1/banks", {"json": {"name": "no spaces allowed", "pdq_threshold": -1}}),
        ),
        ("PATCH", "/v1/banks/{name}"): (
            (bank, {"json": {"enabled": True}}),
            (too_long, {"json": {"pdq_threshold": -1}}),
        ),
        ("DELETE", "/v1/banks/{name}"): ((bank, {}), (too_long, {})),
        ("POST", "/v1/banks/{name}/import"): (
            (
                f"{bank}/import",
                {
                    "params": {"format": "csv"},
                    "content": f"algorithm,hash\nmd5,{MD5}\n",
                    "headers": {"Content-Type": "text/csv"},
                },
            ),
            (f"{bank}/import", {"params": {"format": "bogus", "threshold": 999}}),
        ),
        ("POST", "/v1/banks/{name}/entries"): (
            (f"{bank}/entries", {"json": entries}),
            (f"{bank}/entries", {"json": {"entries": []}}),
        ),
        ("POST", "/v1/banks/{name}/entries/remove"): (
            (f"{bank}/entries/remove", {"json": entries}),
            (f"{bank}/entries/remove", {"json": {"entries": "none"}}),
        ),
        ("POST", "/v1/runs"): (
            ("/v1/runs", {"json": {"paths": [str(root)]}}),
            ("/v1/runs", {"json": {"paths": []}}),
        ),
        ("GET", "/v1/runs"): (("/v1/runs", {}), ("/v1/runs", {"params": {"limit": 0}})),
        ("GET", "/v1/runs/{run_id}"): (("/v1/runs/1", {}), ("/v1/runs/0", {})),
        # no case exists: an allowed request is a 404 (the lead's token may decide)
        ("GET", "/v1/cases"): (("/v1/cases", {}), ("/v1/cases", {"params": {"limit": 0}})),
        ("GET", "/v1/cases/{case_id}"): (("/v1/cases/1", {}), ("/v1/cases/0", {})),
        ("GET", "/v1/cases/{case_id}/statements"): (
            ("/v1/cases/1/statements", {}),
            ("/v1/cases/0/statements", {}),
        ),
        ("POST", "/v1/cases/{case_id}/decisions"): (
            ("/v1/cases/1/decisions", {"json": {"verdict": "escalate", "reason": "matrix"}}),
            ("/v1/cases/0/decisions", {"json": {"verdict": "maybe", "reason": " "}}),
        ),
        ("POST", "/v1/cases/{case_id}/assignee"): (
            ("/v1/cases/1/assignee", {"json": {"assignee": LEAD}}),
            ("/v1/cases/0/assignee", {"json": {"assignee": "not a name"}}),
        ),
        ("POST", "/v1/notices"): (
            (
                "/v1/notices",
                {
                    "json": {
                        "urls": ["https://files.example.test/u/matrix"],
                        "category": "child_sexual_abuse",
                        "explanation": "matrix",
                    }
                },
            ),
            ("/v1/notices", {"json": {"urls": [], "category": "none", "explanation": ""}}),
        ),
        ("POST", "/v1/cases/{case_id}/appeals"): (
            (
                "/v1/cases/1/appeals",
                {"json": {"statement": "hg-c1-confirmed", "reference": "P-1", "explanation": "x"}},
            ),
            ("/v1/cases/0/appeals", {"json": {"statement": "no spaces", "explanation": " "}}),
        ),
        ("GET", "/v1/cases/{case_id}/appeals"): (
            ("/v1/cases/1/appeals", {}),
            ("/v1/cases/0/appeals", {}),
        ),
        ("GET", "/v1/stats"): (
            ("/v1/stats", {"params": {"by": "month"}}),
            ("/v1/stats", {"params": {"by": "person"}}),
        ),
        # /metrics takes no parameter: the "invalid" one is ignored, refused all the same
        ("GET", "/metrics"): (("/metrics", {}), ("/metrics", {"params": {"x": "1"}})),
    }


def _send(
    http: httpx.Client, method: str, request: Request, credentials: dict[str, str]
) -> httpx.Response:
    path, kwargs = request
    headers = {**kwargs.get("headers", {}), **credentials}
    rest = {key: value for key, value in kwargs.items() if key != "headers"}
    return http.request(method, path, headers=headers, **rest)


def _unauthenticated(response: httpx.Response, reason: str = "") -> str | None:
    """Why ``response`` is not a 401 Bearer challenge saying ``reason`` (None when it is)."""
    if response.status_code != 401:
        return f"{response.status_code} instead of 401: {response.text[:200]}"
    if response.headers.get("www-authenticate") != "Bearer":
        return f"WWW-Authenticate is {response.headers.get('www-authenticate')!r}"
    try:
        body = assert_problem(response, 401)
    except AssertionError as exc:
        return f"not a problem: {exc}"
    if reason not in (body["detail"] or ""):
        return f"refused for another reason: {body['detail']!r}"
    return None


def _scoped(
    http: httpx.Client,
    method: str,
    request: Request,
    granted: Scope,
    secret: str,
    needed: Scope | None,
) -> str | None:
    """Why the answer to a request with a valid ``granted`` token is wrong (None if right)."""
    response = _send(http, method, request, bearer(secret))
    if needed is None or granted is needed or granted is Scope.ADMIN:
        if response.status_code in (401, 403):
            return f"{response.status_code} although allowed: {response.text[:200]}"
        return None
    if response.status_code != 403:
        return f"{response.status_code} instead of 403: {response.text[:200]}"
    body = assert_problem(response, 403)
    if f"'{needed}'" not in (body["detail"] or ""):
        return f"a 403 that does not name the missing scope: {body['detail']!r}"
    return None


def test_the_scope_table_covers_every_route(settings: Settings) -> None:
    routes = app_routes(create_app(settings))
    assert {path for _, path in routes} >= PUBLIC
    protected = set(protected_routes(create_app(settings)))
    assert protected == set(REQUIRED), (
        f"routes without a scope in REQUIRED: {sorted(protected - set(REQUIRED))}; "
        f"scopes for routes that do not exist: {sorted(set(REQUIRED) - protected)}"
    )
    assert set(requests_for(Path("/"))) == set(REQUIRED)


def test_every_route_against_every_credential(api_settings: Settings, tmp_path: Path) -> None:
    root = tmp_path / "scan-root"
    root.mkdir()
    settings = api_settings.model_copy(update={"scan_roots": (root,)})
    routes = protected_routes(create_app(settings))
    assert set(routes) == set(REQUIRED)
    requests = requests_for(root)
    past = datetime.now(UTC) - timedelta(minutes=5)
    # Made before the server starts: it caches what it verified for auth.CACHE_SECONDS.
    refused: dict[str, dict[str, str]] = {
        "no Authorization header": {},
        "empty header": {"Authorization": ""},
        "Basic credentials": {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="},
        "Bearer without a token": {"Authorization": "Bearer"},
        "a token without the scheme": {"Authorization": "hgt_" + "a" * 43},
        "unknown token": bearer("hgt_" + "u" * 43),
        "expired token": bearer(make_token(settings, Scope.ADMIN, expires_at=past)),
        "revoked token": bearer(make_token(settings, Scope.ADMIN, revoked=True)),
    }
    #: Each is refused for its own reason (an expired token must not pass as merely unknown).
    reasons = {
        "no Authorization header": "missing bearer token",
        "empty header": "missing bearer token",
        "Basic credentials": "must be 'Bearer <token>'",
        "Bearer without a token": "must be 'Bearer <token>'",
        "a token without the scheme": "must be 'Bearer <token>'",
        "unknown token": "unknown token",
        "expired token": "expired",
        "revoked token": "revoked",
    }
    scoped = {scope: make_token(settings, scope, name=str(scope)) for scope in Scope}
    #: the admin scope on the case routes: a token that acts for the lead
    admin_for_cases = make_token(settings, Scope.ADMIN, name="admin-for-cases")
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        lead = store.people.create_user(LEAD, Role.LEAD)
        admin = store.people.create_user(ADMIN, Role.ADMIN)
        for token in store.tokens.list():
            if token.name in CASE_SCOPES or token.name == "admin-for-cases":
                store.people.set_token_owner(token.id, lead.id)
            elif token.name in scoped:
                store.people.set_token_owner(token.id, admin.id)
    failures: list[str] = []
    with running_server(settings) as base, httpx.Client(base_url=base, timeout=30) as http:
        for path in sorted(PUBLIC):
            for kind in ("no Authorization header", "unknown token", "revoked token"):
                answer = http.get(path, headers=refused[kind])
                if answer.status_code != 200:
                    failures.append(f"GET {path} with {kind}: {answer.status_code} {answer.text}")
        for method, template in routes:
            valid, invalid = requests[(method, template)]
            for kind, credentials in refused.items():
                why = _unauthenticated(_send(http, method, valid, credentials), reasons[kind])
                if why:
                    failures.append(f"{method} {template} with {kind}: {why}")
            why = _unauthenticated(_send(http, method, invalid, {}))
            if why:
                failures.append(f"{method} {template} invalid, without a token: {why}")
            needed = REQUIRED[(method, template)]
            for scope, secret in scoped.items():
                if scope is Scope.ADMIN and needed in CASE_SCOPES:
                    secret = admin_for_cases  # noqa: PLW2901 - the case routes' admin token
                why = _scoped(http, method, valid, scope, secret, needed)
                if why:
                    failures.append(f"{method} {template} with a '{scope}' token: {why}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_malformed_json_body_without_a_token_gets_401(api_settings: Settings) -> None:
    with running_server(api_settings) as base, httpx.Client(base_url=base) as http:
        answer = http.post(
            "/v1/lookup", content=b'{"hashes": [', headers={"Content-Type": "application/json"}
        )
        assert _unauthenticated(answer) is None, answer.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_request_without_a_token_is_refused_before_its_body_is_read(
    api_settings: Settings,
) -> None:
    with running_server(api_settings) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(
                b"POST /v1/lookup HTTP/1.1\r\nHost: test\r\n"
                b"Content-Type: application/json\r\nContent-Length: 500000000\r\n\r\n"
                b'{"hashes": ['
            )
            sock.settimeout(2.0)
            try:
                head = sock.recv(64)
            except TimeoutError:
                head = b"(no answer within 2 s: the server waits for the 500 MB body)"
        assert head.startswith(b"HTTP/1.1 401"), head


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_store_that_cannot_be_reached_is_a_503_problem_not_a_500(api_settings: Settings) -> None:
    with running_server(api_settings) as base:
        store = open_store(api_settings.resolved_database_url)
        try:
            with store.engine.begin() as conn:
                conn.exec_driver_sql("DROP TABLE api_tokens")  # the token lookup now fails
        finally:
            store.close()
        answer = httpx.get(base + "/v1/banks", headers={"Authorization": "Bearer hgt_unknown"})
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "5"
