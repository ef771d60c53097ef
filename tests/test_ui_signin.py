"""Signing in to the review UI with a name and password, over real loopback HTTP: the
cookie's flags, the login form's CSRF defence, ``next`` kept local, wrong credentials
and lock-outs, sign-out, and sessions ending on their idle and absolute timeouts."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, update

from hashguard.domain.people import Role
from hashguard.people.passwords import hash_password
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from hashguard.store.schema import ui_sessions
from hashguard.web.ui.auth import LOGIN_COOKIE, safe_next
from hashguard.web.ui.session import COOKIE
from tests.server import running_server
from tests.test_ui_pages import ui_settings

PASSWORD = "a long enough password"
WRONG = "Wrong name or password."


@contextlib.contextmanager
def opened(settings: Settings) -> Iterator[Store]:
    with contextlib.closing(open_store(settings.resolved_database_url)) as store:
        yield store


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    settings = ui_settings(f"sqlite:///{tmp_path / 'signin.db'}", tmp_path / "home", **overrides)
    with opened(settings) as store:
        hashed = hash_password(PASSWORD)
        store.people.create_user("alice", Role.REVIEWER, password_hash=hashed)
        store.people.create_user("vera", Role.VIEWER, password_hash=hashed)
    return settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, login_max_failures=3)


def client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, follow_redirects=False, timeout=30)


def login_token(page: str) -> str:
    found = re.search(r'name="login_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def login(
    http: httpx.Client,
    name: str,
    password: str,
    *,
    next_path: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """The form as a browser fills it in: read the page, post it back."""
    form = http.get("/ui/login")
    assert form.status_code == 200
    data = {"username": name, "password": password, "login_token": login_token(form.text)}
    if next_path is not None:
        data["next"] = next_path
    return http.post("/ui/login", data=data, headers=headers or {})


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def audit(settings: Settings, action: str) -> list[tuple[str, str | None, dict[str, object]]]:
    with opened(settings) as store:
        return [
            (e.actor, e.subject, dict(e.details))
            for e in store.audit.events()
            if e.action == action
        ]


def test_sign_in_session_and_sign_out(settings: Settings) -> None:
    with running_server(settings) as base, client(base) as http:
        sent_away = http.get("/ui/cases/1")
        assert sent_away.status_code == 303
        assert sent_away.headers["location"] == "/ui/login?next=/ui/cases/1"
        form = http.get("/ui/login", params={"next": "/ui/cases/1"})
        assert 'id="login"' in form.text
        assert 'name="next" value="/ui/cases/1"' in form.text
        assert 'id="oidc-login"' not in form.text  # single sign-on is not configured
        assert form.headers["content-security-policy"].startswith("default-src 'none'")

        signed = login(http, "alice", PASSWORD, next_path="/ui/?state=all")
        assert signed.status_code == 303
        assert signed.headers["location"] == "/ui/?state=all"
        assert http.cookies.get(COOKIE)
        queue = http.get("/ui/")
        assert queue.status_code == 200
        assert "alice (reviewer)" in queue.text
        # signed in already: the form moves on
        assert http.get("/ui/login").headers["location"] == "/ui/"

        # sign-out needs the session's CSRF token
        assert http.post("/ui/logout").status_code == 403
        assert http.get("/ui/").status_code == 200
        secret = http.cookies[COOKIE]
        out = http.post("/ui/logout", data={"csrf_token": csrf_of(queue.text)})
        assert out.status_code == 303
        assert out.headers["location"] == "/ui/login"
        assert COOKIE not in http.cookies
        # the old cookie no longer works: the session was revoked, not just forgotten
        with client(base) as replay:
            replay.cookies.set(COOKIE, secret)
            assert replay.get("/ui/").status_code == 303
            # signing out of a session that has ended already just goes to the sign-in page
            again = replay.post("/ui/logout", data={"csrf_token": "stale"})
            assert again.status_code == 303
            assert again.headers["location"] == "/ui/login"
    (login_event,) = audit(settings, "login")
    assert login_event[:2] == ("user:alice", "user:alice")
    assert login_event[2]["method"] == "password"
    assert login_event[2]["ip"] == "127.0.0.1"
    (ended,) = audit(settings, "session.ended")
    assert ended[:2] == ("user:alice", "user:alice")
    with opened(settings) as store:
        session = store.people.session_by_secret(secret)
        assert session is not None
        assert session.revoked_at is not None


def test_cookie_flags(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, ui_secure_cookies=True)
    with running_server(settings) as base, client(base) as http:
        form = http.get("/ui/login")
        pre = form.headers["set-cookie"]
        assert pre.startswith(LOGIN_COOKIE + "=")
        for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/ui/login"):
            assert flag.lower() in pre.lower(), pre
        token = login_token(form.text)
        # httpx keeps Secure cookies off plain http: send it as a browser on localhost would
        signed = http.post(
            "/ui/login",
            data={"username": "alice", "password": PASSWORD, "login_token": token},
            headers={"Cookie": f"{LOGIN_COOKIE}={token}"},
        )
        assert signed.status_code == 303
        (session_cookie,) = [
            c for c in signed.headers.get_list("set-cookie") if c.startswith(COOKIE + "=")
        ]
        attributes = [a.strip().lower() for a in session_cookie.split(";")]
        assert "httponly" in attributes
        assert "secure" in attributes
        assert "samesite=strict" in attributes
        assert "path=/ui" in attributes
        assert any(a.startswith("max-age=") for a in attributes)


def test_login_csrf_defence(settings: Settings) -> None:
    with running_server(settings) as base, client(base) as http:
        form = http.get("/ui/login")
        token = login_token(form.text)
        fields = {"username": "alice", "password": PASSWORD}
        refused = [
            http.post("/ui/login", data=fields),  # no hidden field
            http.post("/ui/login", data={**fields, "login_token": token + "x"}),  # mismatch
            http.post(  # from another site
                "/ui/login",
                data={**fields, "login_token": token},
                headers={"Origin": "https://evil.example"},
            ),
        ]
        with client(base) as no_cookie:  # the field without the cookie
            refused.append(no_cookie.post("/ui/login", data={**fields, "login_token": token}))
        for answer in refused:
            assert answer.status_code == 403
            assert COOKIE not in answer.cookies
            assert 'class="error"' in answer.text
        assert http.get("/ui/").status_code == 303  # nobody signed in
        assert audit(settings, "login") == []
        # the form as last shown (each showing has a new token), from this origin, works
        ok = http.post(
            "/ui/login",
            data={**fields, "login_token": login_token(refused[2].text)},
            headers={"Origin": base},
        )
        assert ok.status_code == 303
        assert http.get("/ui/").status_code == 200


@pytest.mark.parametrize(
    "next_path",
    [
        "https://evil.example/ui/",
        "//evil.example/ui/",
        "/ui//evil.example",
        "/\\evil.example",
        "/ui/\\\\evil.example",
        "javascript:alert(1)",
        "/api/v1",
        "/ui/login",
        "/ui/oidc/callback?code=x",
        "ui/",
        "/ui/\r\nSet-Cookie: x=y",
        "/ui/../v1/cases",
        "/ui/%2e%2e/v1/cases",
        "/ui/%2E./metrics",
        "/ui/.%2e/metrics",
        "/ui/%5c%5cevil.example",
        "",
    ],
)
def test_next_is_kept_local(next_path: str) -> None:
    assert safe_next(next_path) == "/ui/"


def test_open_redirect_refused_over_http(settings: Settings) -> None:
    with running_server(settings) as base:
        for target in ("https://evil.example/", "//evil.example/ui/", "/ui/../../x"):
            with client(base) as http:
                answer = login(http, "vera", PASSWORD, next_path=target)
                assert answer.status_code == 303
                location = answer.headers["location"]
                assert location in ("/ui/", target)
                assert "//" not in location
                if "evil" in target:
                    assert location == "/ui/"
        assert safe_next("/ui/cases/3?x=1") == "/ui/cases/3?x=1"


def test_wrong_credentials_and_lock_out(settings: Settings) -> None:
    with running_server(settings) as base, client(base) as http:
        unknown = login(http, "nobody", PASSWORD)
        wrong = login(http, "alice", "not the password")
        for answer in (unknown, wrong):
            assert answer.status_code == 401
            assert f'<p class="error" role="alert">{WRONG}</p>' in answer.text
            assert COOKIE not in answer.cookies
        strip = re.compile(r'value="[^"]*"')  # the form's token and the name typed differ
        assert strip.sub("", unknown.text) == strip.sub("", wrong.text)
        assert "not the password" not in wrong.text

        login(http, "vera", "still not it")  # the third failure from here locks the address
        locked = login(http, "alice", PASSWORD)
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 0
        assert "Too many failed sign-ins" in locked.text
        assert http.get("/ui/").status_code == 303
    failed = audit(settings, "login.failed")
    assert [(a, s) for a, s, _ in failed] == [
        ("anon:127.0.0.1", "user:?"),
        ("anon:127.0.0.1", "user:alice"),
        ("anon:127.0.0.1", "user:vera"),
    ]
    (locked_event,) = audit(settings, "login.locked")
    assert locked_event[2]["key"] == "ip:127.0.0.1"


def _age(settings: Settings, secret: str, **fields: datetime) -> None:
    with opened(settings) as store:
        session = store.people.session_by_secret(secret)
        assert session is not None
    engine = create_engine(settings.resolved_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(update(ui_sessions).where(ui_sessions.c.id == session.id).values(**fields))
    finally:
        engine.dispose()


def test_idle_and_absolute_timeouts_end_sessions(settings: Settings) -> None:
    now = datetime.now(UTC)
    with running_server(settings) as base:
        with client(base) as http:
            assert login(http, "alice", PASSWORD).status_code == 303
            assert http.get("/ui/").status_code == 200
            _age(settings, http.cookies[COOKIE], last_seen_at=now - timedelta(minutes=31))
            idle = http.get("/ui/")
            assert idle.status_code == 303
            assert idle.headers["location"].startswith("/ui/login")
        with client(base) as http:
            assert login(http, "alice", PASSWORD).status_code == 303
            # busy all along, but signed in more than 12 hours ago
            _age(
                settings,
                http.cookies[COOKIE],
                created_at=now - timedelta(hours=12, minutes=1),
                last_seen_at=now,
            )
            assert http.get("/ui/").status_code == 303


def test_behind_a_tls_proxy_the_origin_is_https(settings: Settings) -> None:
    """A proxy on a trusted address (uvicorn trusts 127.0.0.1 by default; elsewhere
    FORWARDED_ALLOW_IPS) that terminates TLS says so with X-Forwarded-Proto: the browser's
    https Origin is then this server's own, and an http one is not."""
    with running_server(settings) as base:
        https_origin = base.replace("http://", "https://")
        proxied = {"X-Forwarded-Proto": "https", "Origin": https_origin}
        with client(base) as http:
            assert login(http, "alice", PASSWORD, headers=proxied).status_code == 303
        with client(base) as http:
            refused = login(http, "alice", PASSWORD, headers={**proxied, "Origin": base})
            assert refused.status_code == 403
        with client(base) as http:  # without the proxy's word, https is another origin
            refused = login(http, "alice", PASSWORD, headers={"Origin": https_origin})
            assert refused.status_code == 403
