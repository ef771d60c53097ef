"""Who is signed in to the review UI, what they may do, and CSRF protection.

The session cookie holds a random secret; the store keeps its SHA-256 with the person,
the CSRF token and the times that bound it (idle and absolute timeouts). The cookie is
HttpOnly, SameSite=Strict, Secure (unless ``ui_secure_cookies`` is off), path ``/ui``.
Every state-changing request must carry the session's CSRF token (form field
``csrf_token`` or header ``X-CSRF-Token``) and, when the browser sends one, an Origin
header of this server. Deny by default: a route names the permission it needs.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from hashguard.domain.people import Permission, UiSession, User
from hashguard.settings import Settings
from hashguard.web.services import Services

COOKIE = "hashguard_session"
COOKIE_PATH = "/ui"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
#: a session's last-seen time is written at most this often (seconds)
TOUCH_EVERY = 30.0
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class UiError(Exception):
    """An answer the UI renders as a page (``web.ui.pages`` installs the handler).
    ``location``: send the browser there instead (sign-in)."""

    def __init__(
        self, status: int, title: str, detail: str = "", *, location: str | None = None
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.location = status, title, detail, location


@dataclass(frozen=True, kw_only=True, slots=True)
class SignedIn:
    user: User
    session: UiSession

    def can(self, permission: Permission) -> bool:
        return self.user.can(permission)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def set_session_cookie(response: Response, secret: str, settings: Settings) -> None:
    response.set_cookie(
        COOKIE,
        secret,
        max_age=int(settings.ui_session_absolute_hours * 3600),
        path=COOKIE_PATH,
        secure=settings.ui_secure_cookies,
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        COOKIE,
        path=COOKIE_PATH,
        secure=settings.ui_secure_cookies,
        httponly=True,
        samesite="strict",
    )


def _services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def _load(svc: Services, secret: str) -> SignedIn | None:
    people = svc.store.people
    session = people.session_by_secret(secret)
    if session is None:
        return None
    now = _utcnow()
    settings = svc.settings
    if not session.live(
        now,
        idle_seconds=settings.ui_session_idle_minutes * 60,
        absolute_seconds=settings.ui_session_absolute_hours * 3600,
    ):
        return None
    user = people.get_user(session.user_id)
    if user.disabled:
        return None
    if (now - session.last_seen_at).total_seconds() >= TOUCH_EVERY:
        people.touch_session(session.id, now)
    return SignedIn(user=user, session=session)


async def signed_in_or_none(request: Request) -> SignedIn | None:
    """The request's live session, if any (cached on the request)."""
    if hasattr(request.state, "signed_in"):
        cached: SignedIn | None = request.state.signed_in
        return cached
    secret = request.cookies.get(COOKIE)
    found = None
    if secret:
        found = await run_in_threadpool(_load, _services(request), secret)
    request.state.signed_in = found
    return found


def login_location(request: Request) -> str:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return "/ui/login?next=" + quote(target, safe="/")


async def signed_in(request: Request) -> SignedIn:
    """A dependency: the signed-in person, else sign-in (a page) or 401 (other requests)."""
    found = await signed_in_or_none(request)
    if found is None:
        location = login_location(request) if request.method == "GET" else None
        raise UiError(401, "Sign in", "your session has ended: sign in again", location=location)
    return found


async def check_csrf(request: Request, who: SignedIn) -> None:
    """Refuse a state-changing request without this session's CSRF token or from
    another origin."""
    if request.method not in UNSAFE_METHODS:
        return
    if not same_origin(request):
        raise UiError(403, "Refused", "the request came from another site")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if sent is None or not hmac.compare_digest(sent.encode(), who.session.csrf_token.encode()):
        raise UiError(403, "Refused", "the form was stale or forged: reload the page and retry")


def same_origin(request: Request) -> bool:
    """False when the browser says the request came from another origin than this
    server's (behind a TLS proxy the scheme comes from X-Forwarded-Proto, which uvicorn
    trusts from FORWARDED_ALLOW_IPS)."""
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


def require_any(*permissions: Permission) -> Callable[[Request], Awaitable[SignedIn]]:
    """A dependency: the signed-in person if their role has one of ``permissions``
    (else 403; the endpoint then checks what each may do there), with the CSRF token
    checked on state-changing requests. The role matrix reads ``.permissions``."""

    async def allowed(request: Request) -> SignedIn:
        who = await signed_in(request)
        if not any(who.can(p) for p in permissions):
            raise UiError(403, "Not allowed", f"your role ({who.user.role}) cannot do this")
        await check_csrf(request, who)
        return who

    allowed.permissions = frozenset(permissions)  # type: ignore[attr-defined]
    return allowed


def require(permission: Permission) -> Callable[[Request], Awaitable[SignedIn]]:
    """``require_any`` of one permission."""
    return require_any(permission)
