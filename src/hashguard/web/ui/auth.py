"""Sign-in and sign-out for the review UI: local accounts and OpenID Connect.

Routes (open to everyone: they are how one gets a session):

* ``GET /ui/login`` the form; ``POST /ui/login`` signs in (``people.signin``: rate
  limited, an unknown name answered exactly like a wrong password) and answers 303 to
  ``next`` with the session cookie.
* ``POST /ui/logout`` (a live session and its CSRF token) ends the session.
* ``GET /ui/oidc/login`` sends the browser to the provider; ``GET /ui/oidc/callback``
  comes back from it (``people.oidc``).

Login CSRF (someone else's site signing the browser in as the attacker): there is no
session yet, so the login form carries its own token, double-submitted. ``GET
/ui/login`` sets a short-lived random pre-session cookie (``hashguard_login``: path
/ui/login, HttpOnly, SameSite=Strict, Secure like the session cookie) and puts the same
value in a hidden field; ``POST /ui/login`` is refused (403) unless both are present and
equal. Another site can neither read the cookie nor make the browser send it
(SameSite=Strict). On top, when the browser sends an Origin header (pages set
Referrer-Policy same-origin, so same-origin form posts carry it) it must be this
server's. The OpenID Connect callback is bound to the browser the same way: the state
is also kept in a cookie (``hashguard_oidc``, path /ui/oidc, SameSite=Lax, since the
provider's redirect is a cross-site navigation) and must match.

After an OpenID Connect sign-in the callback answers with a short page that moves on to
``next`` (a ``Refresh`` header and a link) rather than a redirect: the browser came
from the provider, so a redirect would still be part of a cross-site chain and would
not carry the new SameSite=Strict session cookie.

``next`` is followed only when it is a local path under /ui/ (no scheme, no host, no
``//`` or backslash); otherwise /ui/.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Annotated
from urllib.parse import quote, unquote, urlsplit

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from hashguard.audit import record
from hashguard.domain.audit import AuditAction
from hashguard.domain.people import User
from hashguard.people import oidc
from hashguard.people.signin import (
    LockedOut,
    WrongCredentials,
    anon_actor,
    sign_in,
    start_session,
)
from hashguard.web.services import Services
from hashguard.web.ui.common import field, services
from hashguard.web.ui.errors import UiRoute, error_response
from hashguard.web.ui.render import SECURITY_HEADERS, page
from hashguard.web.ui.session import (
    UiError,
    check_csrf,
    clear_session_cookie,
    same_origin,
    set_session_cookie,
    signed_in,
    signed_in_or_none,
)

router = APIRouter(route_class=UiRoute)

LOGIN_COOKIE = "hashguard_login"
LOGIN_COOKIE_PATH = "/ui/login"
LOGIN_FIELD = "login_token"
#: how long a login form stays usable
LOGIN_FORM_SECONDS = 1800
OIDC_COOKIE = "hashguard_oidc"
OIDC_COOKIE_PATH = "/ui/oidc"
HOME = "/ui/"
WRONG = "Wrong name or password."
MAX_NEXT = 500
_SAFE_NEXT = re.compile(r"^/ui(/[^\s\\]*)?$")


def safe_next(value: str | None) -> str:
    """``value`` if it is a local path under /ui/ (not a sign-in page), else /ui/."""
    if not value or len(value) > MAX_NEXT or not _SAFE_NEXT.match(value) or "//" in value:
        return HOME
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return HOME
    path = parts.path
    # a browser resolves dot segments, encoded ones too: /ui/%2e%2e/x is /x
    decoded = unquote(path)
    if "\\" in decoded or "//" in decoded or any(s in (".", "..") for s in decoded.split("/")):
        return HOME
    if path in ("/ui", "/ui/login", "/ui/logout") or path.startswith("/ui/oidc"):
        return HOME
    return value


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _redirect(location: str, status: int = 303) -> Response:
    response = RedirectResponse(location, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def _oidc_offered(svc: Services) -> bool:
    return oidc.configured(svc.settings)


# -- local sign-in -----------------------------------------------------------------------


def _login_page(
    request: Request,
    *,
    next_path: str,
    username: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    svc = services(request)
    token = secrets.token_urlsafe(32)
    response = page(
        request,
        "login.html",
        {
            "next": next_path,
            "username": username,
            "error": error,
            "login_field": LOGIN_FIELD,
            "login_token": token,
            "continue_to": None,
            "oidc": _oidc_offered(svc),
            "oidc_href": "/ui/oidc/login"
            + ("" if next_path == HOME else "?next=" + quote(next_path, safe="/")),
        },
        status=status,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=LOGIN_FORM_SECONDS,
        path=LOGIN_COOKIE_PATH,
        secure=svc.settings.ui_secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response


@router.get("/login")
async def login_form(
    request: Request, next: Annotated[str, Query(max_length=MAX_NEXT)] = ""
) -> Response:
    """The sign-in form (or, for someone signed in already, where they were going)."""
    target = safe_next(next)
    if await signed_in_or_none(request) is not None:
        return _redirect(target)
    return _login_page(request, next_path=target)


def _login_csrf_ok(request: Request, sent: str) -> bool:
    if not same_origin(request):
        return False
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    return bool(cookie and sent) and hmac.compare_digest(cookie.encode(), sent.encode())


@router.post("/login")
async def login(request: Request) -> Response:
    """Sign in with a name and password: 303 to ``next`` with the session cookie; 401
    (same page and text for an unknown name), 429 when locked out, 403 without the
    form's token."""
    svc = services(request)
    form = await request.form()
    next_path = safe_next(field(form, "next"))
    name = field(form, "username").strip()
    password = field(form, "password")
    if not _login_csrf_ok(request, field(form, LOGIN_FIELD)):
        return _login_page(
            request,
            next_path=next_path,
            username=name,
            error="This sign-in form expired or came from another site. Please sign in again.",
            status=403,
        )
    ip = _ip(request)
    try:
        user = await run_in_threadpool(sign_in, svc.store, svc.settings, name, password, ip)
    except WrongCredentials:
        return _login_page(request, next_path=next_path, username=name, error=WRONG, status=401)
    except LockedOut as exc:
        minutes = max(1, -(-exc.retry_after_seconds // 60))
        response = _login_page(
            request,
            next_path=next_path,
            username=name,
            error=f"Too many failed sign-ins. Try again in {minutes} minutes.",
            status=429,
        )
        response.headers["Retry-After"] = str(exc.retry_after_seconds)
        return response
    response = _redirect(next_path)
    await _start(request, svc, response, user, method="password")
    response.delete_cookie(
        LOGIN_COOKIE,
        path=LOGIN_COOKIE_PATH,
        secure=svc.settings.ui_secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response


async def _start(
    request: Request, svc: Services, response: Response, user: User, *, method: str
) -> None:
    """Start ``user``'s session (ending any the browser had) and set its cookie."""
    before = await signed_in_or_none(request)
    if before is not None:
        await run_in_threadpool(svc.store.people.revoke_session, before.session.id)
    _, secret = await run_in_threadpool(
        start_session, svc.store, user, method=method, ip=_ip(request)
    )
    set_session_cookie(response, secret, svc.settings)


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End this session (CSRF token required): 303 to the sign-in page. A session that
    has already ended goes to the sign-in page as well."""
    svc = services(request)
    try:
        who = await signed_in(request)
    except UiError as error:
        if error.status != 401:
            raise
        response = _redirect("/ui/login")
        clear_session_cookie(response, svc.settings)
        return response
    await check_csrf(request, who)

    def end() -> None:
        svc.store.people.revoke_session(who.session.id)
        record(
            svc.store,
            who.user.actor,
            AuditAction.SESSION_ENDED,
            who.user.actor,
            reason="logout",
            method=who.session.method,
            ip=_ip(request),
        )

    await run_in_threadpool(end)
    response = _redirect("/ui/login")
    clear_session_cookie(response, svc.settings)
    return response


# -- OpenID Connect -----------------------------------------------------------------------


def _client(request: Request, svc: Services) -> oidc.OidcClient:
    """The app's relying party (made on first use; keeps the provider's documents)."""
    state = request.app.state
    found: oidc.OidcClient | None = getattr(state, "oidc_client", None)
    if found is None:
        found = oidc.OidcClient(svc.settings)
        state.oidc_client = found
    return found


def _clear_oidc_cookie(response: Response, svc: Services) -> None:
    response.delete_cookie(
        OIDC_COOKIE,
        path=OIDC_COOKIE_PATH,
        secure=svc.settings.ui_secure_cookies,
        httponly=True,
        samesite="lax",
    )


@router.get("/oidc/login")
async def oidc_login(
    request: Request, next: Annotated[str, Query(max_length=MAX_NEXT)] = ""
) -> Response:
    """Start single sign-on: 302 to the provider with state, nonce and a PKCE
    challenge."""
    svc = services(request)
    if not _oidc_offered(svc):
        raise UiError(404, "Not found", "single sign-on is not configured")
    pending = oidc.begin(safe_next(next))
    try:
        url = await _client(request, svc).authorization_url(pending)
    except oidc.OidcError as exc:
        raise UiError(502, "Single sign-on unavailable", exc.detail) from None
    await run_in_threadpool(svc.store.people.put_oidc_pending, pending)
    response = _redirect(url, status=302)
    response.set_cookie(
        OIDC_COOKIE,
        pending.state,
        max_age=int(oidc.PENDING_SECONDS),
        path=OIDC_COOKIE_PATH,
        secure=svc.settings.ui_secure_cookies,
        httponly=True,
        samesite="lax",
    )
    return response


def _refuse(request: Request, svc: Services, error: oidc.OidcError) -> UiError:
    record(
        svc.store,
        anon_actor(_ip(request)),
        AuditAction.LOGIN_FAILED,
        error.subject,
        method="oidc",
        ip=_ip(request),
        reason=error.reason,
    )
    if isinstance(error, oidc.OidcUnavailable):
        return UiError(502, "Single sign-on unavailable", error.detail)
    if error.refused:
        return UiError(403, "Not allowed", error.detail)
    return UiError(400, "Sign-in failed", error.detail + ": please sign in again")


async def _callback(request: Request, svc: Services) -> tuple[User, str]:
    query = request.query_params
    state, code, error = query.get("state", ""), query.get("code", ""), query.get("error")
    if error is not None:
        raise oidc.OidcError("provider_error", f"the provider said {error[:100]!r}")
    if not state or not code or len(state) > 100 or len(code) > 2000:
        raise oidc.OidcError("bad_callback", "the provider's answer lacks state or code")
    bound = request.cookies.get(OIDC_COOKIE, "")
    if not hmac.compare_digest(bound.encode(), state.encode()):
        raise oidc.OidcError("state_mismatch", "this sign-in was not started in this browser")
    pending = await run_in_threadpool(svc.store.people.take_oidc_pending, state)
    if pending is None:
        raise oidc.OidcError("unknown_state", "this sign-in is unknown or was used already")
    if oidc.expired(pending):
        raise oidc.OidcError("expired_state", "this sign-in took too long")
    identity = await _client(request, svc).identify(pending, code)
    user = await run_in_threadpool(oidc.admit, svc.store, svc.settings, identity)
    return user, safe_next(pending.return_to)


@router.get("/oidc/callback")
async def oidc_callback(request: Request) -> Response:
    """Back from the provider: sign the person in and move on to where they were
    going (a page, not a redirect: see the module's docstring)."""
    svc = services(request)
    if not _oidc_offered(svc):
        raise UiError(404, "Not found", "single sign-on is not configured")
    try:
        user, target = await _callback(request, svc)
    except oidc.OidcError as exc:
        refusal = await run_in_threadpool(_refuse, request, svc, exc)
        response = error_response(request, refusal)
        _clear_oidc_cookie(response, svc)
        return response
    response = page(request, "login.html", {"continue_to": target, "who": None, "error": None})
    response.headers["Refresh"] = f"0; url={target}"
    await _start(request, svc, response, user, method="oidc")
    _clear_oidc_cookie(response, svc)
    return response
