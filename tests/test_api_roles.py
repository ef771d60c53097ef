"""A token that acts for a person never does more than the person's role, on every route
(issue 19, item 9): route x (scope, role) for tokens made with ``--user``.

A token made with ``--scope admin --user <auditor>`` could change banks and start runs;
only the case API applied the person's role. Now every scope a route needs is also
checked against the role (``domain.people.SCOPE_PERMISSIONS``).
"""

from __future__ import annotations

import contextlib
import itertools

import httpx

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.people import ROLE_PERMISSIONS, SCOPE_PERMISSIONS, Permission, Role
from hashguard.domain.tokens import Scope
from hashguard.settings import Settings
from hashguard.store import open_store
from tests.api_support import bearer
from tests.server import running_server

IMAGE = encode(generate(Kind.PHOTO, 3, 64, 48))
_names = itertools.count()

#: One route per scope: (scope, method, path, request arguments). A route's own checks
#: beyond its scope (a case decision needs case.decide) are in EXTRA.
ROUTES: list[tuple[Scope, str, str, dict[str, object]]] = [
    (Scope.SCAN, "POST", "/v1/scan", {"content": IMAGE}),
    (
        Scope.LOOKUP,
        "POST",
        "/v1/lookup",
        {"json": {"hashes": [{"algorithm": "md5", "hash": "1" * 32}]}},
    ),
    (Scope.BANKS_READ, "GET", "/v1/banks", {}),
    (Scope.BANKS_READ, "GET", "/v1/banks/shared", {}),
    (Scope.BANKS_WRITE, "POST", "/v1/banks", {"json": {"name": "NEW"}}),
    (Scope.BANKS_WRITE, "PATCH", "/v1/banks/shared", {"json": {"source": "changed"}}),
    (
        Scope.BANKS_WRITE,
        "POST",
        "/v1/banks/shared/entries",
        {"json": {"entries": [{"algorithm": "md5", "hash": "2" * 32}]}},
    ),
    (
        Scope.BANKS_WRITE,
        "POST",
        "/v1/banks/shared/import",
        {"params": {"format": "plain", "allow_empty": "true"}, "content": b"3" * 32 + b"\n"},
    ),
    (Scope.CASES_READ, "GET", "/v1/cases", {}),
    (Scope.CASES_READ, "GET", "/v1/cases/999999", {}),
    (
        Scope.CASES_REVIEW,
        "POST",
        "/v1/cases/999999/decisions",
        {"json": {"verdict": "escalate", "reason": "r"}},
    ),
    (Scope.APPEALS, "GET", "/v1/cases/999999/appeals", {}),
    (Scope.ADMIN, "GET", "/v1/runs", {}),
    # an empty list of paths: 422 once allowed (so no run starts), 403 when refused
    (Scope.ADMIN, "POST", "/v1/runs", {"json": {"paths": []}}),
    (Scope.ADMIN, "GET", "/v1/runs/999999", {}),
]
#: (a decision is made by a person: a token without one is refused there too)
EXTRA = {"/v1/cases/999999/decisions": Permission.CASE_DECIDE}


def _allowed(role: Role | None, scope: Scope, path: str) -> bool:
    extra = EXTRA.get(path)
    if role is None:
        return extra is None
    permissions = ROLE_PERMISSIONS[role]
    return bool(SCOPE_PERMISSIONS[scope] & permissions) and (extra is None or extra in permissions)


def _tokens(settings: Settings, scopes: dict[Scope, Scope], role: Role | None) -> dict[Scope, str]:
    """A token per key of ``scopes`` with the scope it maps to, acting for one new
    person of ``role`` (or for nobody)."""
    secrets = {}
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        person = None if role is None else store.people.create_user(f"p{next(_names)}", role)
        for key, scope in scopes.items():
            token, secrets[key] = store.tokens.create(f"t{next(_names)}", [scope])
            if person is not None:
                store.people.set_token_owner(token.id, person.id)
    return secrets


def _token(settings: Settings, scope: Scope, role: Role | None) -> str:
    return _tokens(settings, {scope: scope}, role)[scope]


def test_every_route_applies_the_role_of_the_tokens_person(api_settings: Settings) -> None:
    settings = api_settings
    wrong: list[str] = []
    with running_server(settings) as base, httpx.Client(base_url=base, timeout=30) as http:
        setup = bearer(_token(settings, Scope.ADMIN, None))
        assert http.post("/v1/banks", json={"name": "shared"}, headers=setup).status_code == 201
        for role, use_admin in itertools.product([*Role, None], (False, True)):
            secrets = _tokens(settings, {s: Scope.ADMIN if use_admin else s for s in Scope}, role)
            for scope, method, path, kwargs in ROUTES:
                arguments = dict(kwargs)
                if arguments.get("json") == {"name": "NEW"}:
                    arguments["json"] = {"name": f"new-{next(_names)}"}
                answer = http.request(
                    method,
                    path,
                    headers=bearer(secrets[scope]),
                    **arguments,  # type: ignore[arg-type]
                )
                allowed = _allowed(role, scope, path)
                refused = answer.status_code == 403
                if allowed == refused or answer.status_code >= 500:
                    wrong.append(
                        f"{'admin' if use_admin else scope} token for {role}: {method} {path} "
                        f"-> {answer.status_code} {answer.text[:160]}"
                    )
    assert not wrong, "\n".join(wrong)


def test_the_admin_scope_of_an_auditor_changes_no_bank_and_starts_no_run(
    api_settings: Settings,
) -> None:
    """The probe's exact finding, end to end."""
    with running_server(api_settings) as base, httpx.Client(base_url=base, timeout=30) as http:
        auditor = bearer(_token(api_settings, Scope.ADMIN, Role.AUDITOR))
        for method, path, kwargs in (
            ("POST", "/v1/banks", {"json": {"name": "sneaky"}}),
            ("POST", "/v1/runs", {"json": {"paths": ["/"]}}),
            ("GET", "/v1/banks", {}),
        ):
            answer = http.request(method, path, headers=auditor, **kwargs)  # type: ignore[arg-type]
            assert answer.status_code == 403, answer.text
            assert "auditor" in answer.json()["detail"]
        admin = bearer(_token(api_settings, Scope.ADMIN, None))
        assert http.get("/v1/banks", headers=admin).json() == []
