"""Single sign-on end to end: a live hashguard server and a loopback OpenID Provider
(tests/fakes/oidc.py), over real HTTP. A person is created from a group claim or bound
through a pre-added e-mail address; every forged or spoiled step (state, nonce,
signature, audience, expiry, PKCE verifier, another browser) is refused, audited, and
signs nobody in."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn

from hashguard.domain.people import Role
from hashguard.people import oidc
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from hashguard.web.app import create_app
from hashguard.web.ui.auth import OIDC_COOKIE
from hashguard.web.ui.session import COOKIE
from tests.fakes.oidc import FakeOidcProvider
from tests.server import free_port
from tests.test_ui_pages import ui_settings

CLIENT_ID = "hashguard-review"
CLIENT_SECRET = "s3cret: with / odd + characters"
ROLE_MAP = {"hg-leads": "lead", "hg-reviewers": "reviewer", "hg-admins": "admin"}


@contextlib.contextmanager
def serving(settings: Settings, port: int) -> Iterator[str]:
    """``settings`` served on 127.0.0.1:``port`` (the callback URL names the port)."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not start"
        assert thread.is_alive(), "the server stopped"
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class Sso:
    base: str
    provider: FakeOidcProvider
    settings: Settings

    def store(self) -> contextlib.closing[Store]:
        return contextlib.closing(open_store(self.settings.resolved_database_url))

    def browser(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, follow_redirects=False, timeout=30)

    def start(self, http: httpx.Client, next_path: str | None = None) -> str:
        """Begin at /ui/oidc/login; returns the provider's redirect back (the callback
        URL with code and state)."""
        params = {"next": next_path} if next_path else {}
        begun = http.get("/ui/oidc/login", params=params)
        assert begun.status_code == 302, begun.text
        assert begun.headers["location"].startswith(self.provider.url + "/authorize?")
        at_provider = httpx.get(begun.headers["location"], follow_redirects=False, timeout=30)
        assert at_provider.status_code == 302, at_provider.text
        back: str = at_provider.headers["location"]
        assert back.startswith(self.base + "/ui/oidc/callback?")
        return back

    def sign_in(self, http: httpx.Client, next_path: str | None = None) -> httpx.Response:
        return http.get(self.start(http, next_path))

    def audit(self, action: str) -> list[tuple[str, str | None, dict[str, Any]]]:
        with self.store() as store:
            return [
                (e.actor, e.subject, dict(e.details))
                for e in store.audit.events()
                if e.action == action
            ]


@pytest.fixture
def sso(tmp_path: Path) -> Iterator[Sso]:
    port = free_port()
    callback = f"http://127.0.0.1:{port}/ui/oidc/callback"
    with FakeOidcProvider(CLIENT_ID, CLIENT_SECRET, callback) as provider:
        settings = ui_settings(
            f"sqlite:///{tmp_path / 'oidc.db'}",
            tmp_path / "home",
            oidc_issuer=provider.url,
            oidc_client_id=CLIENT_ID,
            oidc_client_secret=CLIENT_SECRET,
            oidc_redirect_url=callback,
            oidc_roles_claim="groups",
            oidc_role_map=ROLE_MAP,
        )
        with serving(settings, port) as base:
            yield Sso(base=base, provider=provider, settings=settings)


def assert_signed_in(http: httpx.Client, answer: httpx.Response, target: str = "/ui/") -> str:
    assert answer.status_code == 200, answer.text
    assert answer.headers["refresh"] == f"0; url={target}"
    assert f'href="{target}"' in answer.text
    assert http.cookies.get(COOKIE)
    queue = http.get(target)
    assert queue.status_code == 200
    return queue.text


def assert_refused(sso: Sso, http: httpx.Client, answer: httpx.Response, reason: str) -> None:
    assert answer.status_code in (400, 403), (answer.status_code, answer.text)
    assert COOKIE not in answer.cookies
    assert not http.cookies.get(COOKIE)
    assert http.get("/ui/").status_code == 303  # nobody signed in
    reasons = [d["reason"] for _, _, d in sso.audit("login.failed")]
    assert reasons[-1] == reason, reasons
    assert sso.audit("login") == []


def test_login_page_offers_single_sign_on(sso: Sso) -> None:
    with sso.browser() as http:
        page = http.get("/ui/login")
        assert 'id="oidc-login"' in page.text
        assert 'href="/ui/oidc/login"' in page.text
        with_next = http.get("/ui/login", params={"next": "/ui/cases/4"})
        assert 'href="/ui/oidc/login?next=/ui/cases/4"' in with_next.text
        begun = http.get("/ui/oidc/login")
    query = parse_qs(urlsplit(begun.headers["location"]).query)
    assert query["response_type"] == ["code"]
    assert query["client_id"] == [CLIENT_ID]
    assert query["code_challenge_method"] == ["S256"]
    assert query["scope"] == ["openid email profile"]
    assert len(query["state"][0]) >= 32
    assert len(query["nonce"][0]) >= 32
    cookie = begun.headers["set-cookie"]
    assert cookie.startswith(OIDC_COOKIE + "=")
    assert "samesite=lax" in cookie.lower()
    assert "httponly" in cookie.lower()


def test_person_created_from_the_group_claim(sso: Sso) -> None:
    sso.provider.person = {
        "sub": "u-100",
        "preferred_username": "Dana Lead!",
        "email": "dana@example.org",
        "email_verified": True,
        "name": "Dana L.",
        "groups": ["staff", "hg-reviewers", "hg-leads"],
    }
    with sso.browser() as http:
        answer = sso.sign_in(http, next_path="/ui/?state=all")
        queue = assert_signed_in(http, answer, "/ui/?state=all")
        assert "Dana L. (lead)" in queue
    with sso.store() as store:
        dana = store.people.find_by_oidc(f"{sso.provider.url} u-100")
        assert dana is not None
        assert (dana.name, dana.role, dana.email) == ("Dana-Lead", Role.LEAD, "dana@example.org")
        assert not dana.has_password
    (created,) = sso.audit("user.created")
    assert created[:2] == ("system:oidc", "user:Dana-Lead")
    (login,) = sso.audit("login")
    assert login[2]["method"] == "oidc"

    # the provider decides the role at every sign-in
    sso.provider.person = {**sso.provider.person, "groups": ["hg-reviewers"]}
    with sso.browser() as http:
        assert "(reviewer)" in assert_signed_in(http, sso.sign_in(http))
    with sso.store() as store:
        again = store.people.find_user("Dana-Lead")
        assert again is not None
        assert again.role == Role.REVIEWER
        assert len(store.people.list_users()) == 1
    (updated,) = sso.audit("user.updated")
    assert updated[2] == {"role": "reviewer"}

    # no mapped group left: refused, deny by default
    sso.provider.person = {**sso.provider.person, "groups": ["staff"]}
    with sso.browser() as http:
        answer = sso.sign_in(http)
        assert answer.status_code == 403
        assert "no role" in answer.text
        assert not http.cookies.get(COOKIE)


def test_a_name_taken_locally_is_not_taken_over(sso: Sso) -> None:
    with sso.store() as store:
        store.people.create_user("admin", Role.ADMIN)
    sso.provider.person = {"sub": "evil", "preferred_username": "admin", "groups": "hg-reviewers"}
    with sso.browser() as http:
        assert "(reviewer)" in assert_signed_in(http, sso.sign_in(http))
    with sso.store() as store:
        admin = store.people.find_user("admin")
        assert admin is not None
        assert admin.oidc_subject is None
        created = store.people.find_by_oidc(f"{sso.provider.url} evil")
        assert created is not None
        assert (created.name, created.role) == ("admin-2", Role.REVIEWER)


def test_pre_added_person_bound_by_verified_email(sso: Sso, tmp_path: Path) -> None:
    settings = sso.settings.model_copy(update={"oidc_roles_claim": None})
    with sso.store() as store:
        erin = store.people.create_user("erin", Role.REVIEWER, email="Erin@Example.org")
        off = store.people.create_user("olaf", Role.REVIEWER, email="olaf@example.org")
        store.people.update_user(off.id, disabled=True)
    port = free_port()
    callback = f"http://127.0.0.1:{port}/ui/oidc/callback"
    settings = settings.model_copy(update={"oidc_redirect_url": callback})
    sso.provider.redirect_uri = callback
    with serving(settings, port) as base:
        plain = replace(sso, base=base, settings=settings)
        # an unverified address binds nobody; without a roles claim nobody is created
        sso.provider.person = {"sub": "e-1", "email": "erin@example.org", "groups": ["hg-leads"]}
        with plain.browser() as http:
            assert_refused(plain, http, plain.sign_in(http), "unknown_person")
        sso.provider.person = {**sso.provider.person, "email_verified": True}
        with plain.browser() as http:
            assert "erin (reviewer)" in assert_signed_in(http, plain.sign_in(http))
        with plain.browser() as http:  # found by subject from now on, whatever the address
            sso.provider.person = {"sub": "e-1", "email": "new@example.org"}
            assert_signed_in(http, plain.sign_in(http))
        sso.provider.person = {"sub": "o-1", "email": "olaf@example.org", "email_verified": True}
        with plain.browser() as http:
            answer = plain.sign_in(http)
            assert answer.status_code == 403
            assert not http.cookies.get(COOKIE)
    with sso.store() as store:
        bound = store.people.get_user(erin.id)
        assert bound.oidc_subject == f"{sso.provider.url} e-1"
        assert bound.role == Role.REVIEWER  # no roles claim: the role stays as added
        olaf = store.people.get_user(off.id)
        assert olaf.oidc_subject is None
    reasons = [d["reason"] for _, _, d in plain.audit("login.failed")]
    assert reasons == ["unknown_person", "disabled"]


def test_state_must_match_and_is_used_once(sso: Sso) -> None:
    sso.provider.person = {"sub": "s-1", "groups": ["hg-reviewers"]}
    with sso.browser() as http:
        back = sso.start(http)
        forged = back.replace("state=", "state=x")
        assert_refused(sso, http, http.get(forged), "state_mismatch")
    with sso.browser() as http:  # another browser than the one that began
        back = sso.start(http)
    with sso.browser() as other:
        assert_refused(sso, other, other.get(back), "state_mismatch")
    with sso.browser() as http:  # a state the server never made, bound by a cookie
        back = sso.start(http)
        state = parse_qs(urlsplit(back).query)["state"][0]
        fake_state = "f" * 43
        http.cookies.set(OIDC_COOKIE, fake_state, path="/ui/oidc")
        assert_refused(sso, http, http.get(back.replace(state, fake_state)), "unknown_state")
    with sso.browser() as http:  # the same answer twice: the state was used
        back = sso.start(http)
        state = parse_qs(urlsplit(back).query)["state"][0]
        assert_signed_in(http, http.get(back))
        http.cookies.clear()
        http.cookies.set(OIDC_COOKIE, state, path="/ui/oidc")
        replayed = http.get(back)
        assert replayed.status_code == 400
        assert not http.cookies.get(COOKIE)
    reasons = [d["reason"] for _, _, d in sso.audit("login.failed")]
    assert reasons[-1] == "unknown_state"


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("nonce", "bad_nonce"),
        ("signature", "bad_signature"),
        ("other_key", "bad_signature"),
        ("audience", "bad_aud"),
        ("expired", "expired_token"),
        ("issuer", "bad_iss"),
    ],
)
def test_spoiled_id_tokens_are_refused(sso: Sso, tamper: str, reason: str) -> None:
    sso.provider.person = {"sub": "t-1", "groups": ["hg-admins"]}
    sso.provider.tamper = {tamper}
    with sso.browser() as http:
        assert_refused(sso, http, sso.sign_in(http), reason)
    with sso.store() as store:
        assert store.people.list_users() == []


def test_wrong_pkce_verifier_is_refused(sso: Sso) -> None:
    """A code injected into another sign-in: its verifier does not match the challenge."""
    sso.provider.person = {"sub": "p-1", "groups": ["hg-reviewers"]}
    with sso.browser() as http:
        back = sso.start(http)
        state = parse_qs(urlsplit(back).query)["state"][0]
        with sso.store() as store:
            pending = store.people.take_oidc_pending(state)
            assert pending is not None
            store.people.put_oidc_pending(
                replace(pending, code_verifier=oidc.begin(None).code_verifier)
            )
        assert_refused(sso, http, http.get(back), "token_refused")
    assert sso.provider.refusals == ["PKCE verification failed"]


def test_provider_errors_and_bad_configuration(sso: Sso) -> None:
    sso.provider.deny = True
    with sso.browser() as http:
        back = sso.start(http)
        assert "error=access_denied" in back
        assert_refused(sso, http, http.get(back), "provider_error")
    with pytest.raises(oidc.OidcError):
        oidc.check_url("http://idp.example.org", "issuer")
    assert oidc.check_url("https://idp.example.org", "issuer")
    assert oidc.check_url("http://localhost:8080", "issuer")
    with pytest.raises(ValueError, match="not configured"):
        oidc.OidcClient(Settings())


def test_not_offered_unless_configured(tmp_path: Path) -> None:
    settings = ui_settings(f"sqlite:///{tmp_path / 'plain.db'}", tmp_path / "home")
    with serving(settings, free_port()) as base, httpx.Client(base_url=base) as http:
        assert http.get("/ui/oidc/login").status_code == 404
        assert http.get("/ui/oidc/callback", params={"state": "x", "code": "y"}).status_code == 404
        assert 'id="oidc-login"' not in http.get("/ui/login").text
