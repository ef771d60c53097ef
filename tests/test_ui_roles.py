"""Every review-UI route against every role, over real HTTP: deny by default.

The routes are read from the app itself, so a /ui route added without ``require(...)``
(or ``require_any(...)``) fails here. Sign-in, sign-out, OpenID Connect and static files
are the only routes open to everyone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import iter_route_contexts

from hashguard.domain.people import ROLE_PERMISSIONS, Permission, Role
from hashguard.settings import Settings
from hashguard.web.app import create_app
from hashguard.web.ui.session import COOKIE
from tests.server import running_server
from tests.test_ui_pages import ROLES, World, build_world, ui_settings

#: open to everyone: they sign people in and out, or serve CSS and JavaScript
OPEN = re.compile(r"^/ui/(login|logout|oidc(/.*)?|static(/.*)?)$")
#: what the contract says each route needs (a route not listed still needs a gate)
EXPECTED: dict[tuple[str, str], frozenset[Permission]] = {
    ("GET", "/ui/"): frozenset({Permission.QUEUE_VIEW}),
    ("GET", "/ui/cases/{case_id}"): frozenset({Permission.QUEUE_VIEW}),
    ("GET", "/ui/cases/{case_id}/preview"): frozenset({Permission.QUEUE_VIEW}),
    ("GET", "/ui/cases/{case_id}/original"): frozenset({Permission.CASE_REVEAL}),
    ("POST", "/ui/cases/{case_id}/reveal"): frozenset({Permission.CASE_REVEAL}),
    ("GET", "/ui/cases/{case_id}/frames/{ms}"): frozenset({Permission.QUEUE_VIEW}),
    ("POST", "/ui/cases/{case_id}/frames/{ms}/reveal"): frozenset({Permission.CASE_REVEAL}),
    ("GET", "/ui/cases/{case_id}/frames/{ms}/original"): frozenset({Permission.CASE_REVEAL}),
    ("POST", "/ui/cases/{case_id}/decide"): frozenset({Permission.CASE_DECIDE}),
    ("POST", "/ui/cases/{case_id}/assign"): frozenset(
        {Permission.CASE_DECIDE, Permission.CASE_ASSIGN}
    ),
    ("GET", "/ui/dead-letters"): frozenset({Permission.ACTIONS_MANAGE}),
    ("POST", "/ui/dead-letters/{action_id}/retry"): frozenset({Permission.ACTIONS_MANAGE}),
    ("GET", "/ui/exposure"): frozenset({Permission.EXPOSURE_VIEW}),
    ("POST", "/ui/exposure/grant"): frozenset({Permission.EXPOSURE_GRANT}),
    ("GET", "/ui/audit"): frozenset({Permission.AUDIT_READ}),
    ("GET", "/ui/flood"): frozenset({Permission.FLOOD_MANAGE}),
    ("POST", "/ui/flood/{flag_id}/release"): frozenset({Permission.FLOOD_MANAGE}),
    ("POST", "/ui/flood/{flag_id}/tombstone"): frozenset({Permission.FLOOD_MANAGE}),
    ("GET", "/ui/reports"): frozenset({Permission.REPORTS_VIEW}),
    ("POST", "/ui/cases/{case_id}/report"): frozenset({Permission.REPORTS_SUBMIT}),
    ("POST", "/ui/reports/{report_id}/retract"): frozenset({Permission.REPORTS_SUBMIT}),
    ("GET", "/ui/notices"): frozenset({Permission.QUEUE_VIEW}),
    ("GET", "/ui/notices/{notice_id}"): frozenset({Permission.QUEUE_VIEW}),
    ("POST", "/ui/appeals/{appeal_id}/decide"): frozenset({Permission.CASE_DECIDE}),
    ("GET", "/ui/stats"): frozenset({Permission.STATS_VIEW}),
    ("GET", "/ui/stats.csv"): frozenset({Permission.STATS_VIEW}),
}
MISSING_ID = "987654"


def ui_routes(app: FastAPI) -> list[tuple[str, str, Any]]:
    """(method, path, route) for every /ui route but the open ones."""
    found = []
    for route in iter_route_contexts(app.routes):
        path = getattr(route, "path", "")
        if not (path == "/ui" or path.startswith("/ui/")) or OPEN.match(path.rstrip("/")):
            continue
        methods = getattr(route, "methods", None) or {"*"}
        found.extend((method, path, route) for method in sorted(methods - {"HEAD"}))
    return found


def gate_of(route: Any) -> frozenset[Permission] | None:
    """The permissions named by the route's ``require``/``require_any`` dependency."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    gates = []
    for dependency in dependant.dependencies:
        call = dependency.call
        if hasattr(call, "permissions"):
            gates.append(frozenset(call.permissions))
    assert len(gates) <= 1, f"{route.path} has {len(gates)} permission gates"
    return gates[0] if gates else None


@pytest.fixture
def app() -> FastAPI:
    return create_app(Settings())


def test_every_ui_route_is_gated_by_a_permission(app: FastAPI) -> None:
    routes = ui_routes(app)
    seen = {(method, path) for method, path, _ in routes}
    assert set(EXPECTED) <= seen, f"contract routes missing: {set(EXPECTED) - seen}"
    for method, path, route in routes:
        gate = gate_of(route)
        assert gate, f"{method} {path} has no require(...) dependency"
        if (method, path) in EXPECTED:
            assert gate == EXPECTED[method, path], (method, path, gate)


def test_the_matrix_test_would_catch_an_ungated_route(app: FastAPI) -> None:
    extra = APIRouter(prefix="/ui")

    @extra.get("/sneaky")
    def sneaky() -> str:
        return "no gate"

    app.include_router(extra)
    (found,) = [r for m, p, r in ui_routes(app) if p == "/ui/sneaky"]
    assert gate_of(found) is None


def _url(path: str, world: World, method: str) -> str:
    """A request for ``path``: for pages that show something, an existing case; for
    steps, an id that does not exist (so an allowed role gets past the gate and stops
    at 404 or 400, changing nothing)."""
    case_id = str(world.cases["act"]) if method == "GET" else MISSING_ID
    if path.endswith("/original"):
        case_id = MISSING_ID  # without a reveal an allowed role gets 403 by design
    path = path.replace("{case_id}", case_id)
    return re.sub(r"\{[^}]+\}", MISSING_ID, path)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(
        ui_settings(f"sqlite:///{tmp_path / 'roles.db'}", tmp_path / "home"), tmp_path
    )


def test_route_by_role_matrix_over_http(world: World) -> None:
    routes = ui_routes(create_app(world.settings))
    failures = []
    with running_server(world.settings) as base:
        with httpx.Client(base_url=base, follow_redirects=False) as anonymous:
            for method, path, _ in routes:
                answer = anonymous.request(method, _url(path, world, method))
                if method == "GET":
                    ok = answer.status_code == 303 and answer.headers["location"].startswith(
                        "/ui/login?next="
                    )
                else:
                    ok = answer.status_code == 401
                if not ok:
                    failures.append(("anonymous", method, path, answer.status_code))
        for role in Role:
            person = next(p for p in world.people.values() if ROLES[p.name] is role)
            with httpx.Client(
                base_url=base, cookies={COOKIE: person.secret}, follow_redirects=False
            ) as http:
                for method, path, route in routes:
                    gate = gate_of(route)
                    assert gate is not None
                    allowed = bool(gate & ROLE_PERMISSIONS[role])
                    data = {"csrf_token": person.csrf} if method != "GET" else None
                    answer = http.request(method, _url(path, world, method), data=data)
                    status = answer.status_code
                    if allowed and status in (401, 403):
                        failures.append((role, method, path, status))
                    if not allowed and status != 403:
                        failures.append((role, method, path, status))
                    if allowed and status >= 500:
                        failures.append((role, method, path, status))
    assert failures == []
