"""The public notice form (DSA Art. 16's "easy to access, user-friendly" mechanism):
``GET /notice`` the form, ``POST /notice`` sends it, no account needed.

* CSRF: double-submit, as the sign-in form (there is no session): ``GET`` sets a random
  short-lived cookie (``hashguard_notice``: path /notice, HttpOnly, SameSite=Strict) and
  puts the same value in a hidden field; ``POST`` is refused (403) unless both are there
  and equal, and, when the browser sends an Origin header, it is this server's.
* Rate limit: per client IP, ``notices_form_per_minute`` and ``notices_form_per_day``
  posts (429), counted in memory by this process (several processes each count their
  own; a restart forgets).
* Size: the body is read up to ``MAX_BODY`` bytes (413 past it, before parsing); each
  field has its length (``notices.intake``).
* No open redirect: a sent notice answers 303 to the fixed page ``/notice/received/<id>``,
  never to a place the request names; every redirect here is a path on this site
  (``/notice/`` too, which Starlette would send to a URL built from the Host header).
  No e-mail is sent by hashguard: the platform gets a ``notice.received`` webhook and
  acknowledges it if it wants to.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from hashguard.domain.notices import NoticeCategory, NoticeChannel, Notifier, NotifierKind
from hashguard.notices.intake import (
    MAX_EXPLANATION,
    NEXT_STEPS,
    NoticeRefused,
    NoticeRequest,
    receive,
)
from hashguard.web.ui.common import services
from hashguard.web.ui.render import SECURITY_HEADERS, page
from hashguard.web.ui.session import same_origin

router = APIRouter(include_in_schema=False)

FORM_COOKIE = "hashguard_notice"
FORM_FIELD = "form_token"
FORM_SECONDS = 3600
#: the largest form body read (100 URLs of 2000 characters and the explanation fit)
MAX_BODY = 256 * 1024
#: who the audit log names for a notice sent through the form (not the sender's IP)
FORM_ACTOR = "anon:notice-form"
#: at most this many addresses are remembered by the rate limit (the oldest forgotten)
MAX_TRACKED = 100_000
DAY = 86_400.0
MINUTE = 60.0

LABELS = {
    NoticeCategory.CHILD_SEXUAL_ABUSE: "Child sexual abuse material",
    NoticeCategory.PROTECTION_OF_MINORS: "Other harm to minors",
    NoticeCategory.NON_CONSENSUAL_BEHAVIOUR: "Non-consensual intimate images",
    NoticeCategory.ILLEGAL_OR_HARMFUL_SPEECH: "Illegal hate speech",
    NoticeCategory.VIOLENCE: "Violence or terrorist content",
    NoticeCategory.INTELLECTUAL_PROPERTY_INFRINGEMENTS: "Intellectual property infringement",
    NoticeCategory.DATA_PROTECTION_AND_PRIVACY_VIOLATIONS: "Privacy or data protection",
    NoticeCategory.SCAMS_AND_FRAUD: "Scam or fraud",
    NoticeCategory.OTHER: "Other illegal content",
}


class FormLimiter:
    """Posts per client address in a sliding minute and day, in this process's memory."""

    def __init__(
        self, per_minute: int, per_day: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._per_minute = per_minute
        self._per_day = per_day
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, address: str) -> bool:
        """Count a post from ``address`` if it is within both limits."""
        now = self._clock()
        with self._lock:
            times = self._seen.pop(address, None) or deque()
            while times and times[0] <= now - DAY:
                times.popleft()
            recent = sum(1 for t in times if t > now - MINUTE)
            allowed = recent < self._per_minute and len(times) < self._per_day
            if allowed:
                times.append(now)
            if times:
                self._seen[address] = times  # re-inserted: the dict's order is by last use
            while len(self._seen) > MAX_TRACKED:
                del self._seen[next(iter(self._seen))]
            return allowed


def _limiter(request: Request) -> FormLimiter:
    state = request.app.state
    limiter: FormLimiter | None = getattr(state, "notice_form_limiter", None)
    if limiter is None:
        settings = services(request).settings
        limiter = FormLimiter(settings.notices_form_per_minute, settings.notices_form_per_day)
        state.notice_form_limiter = limiter
    return limiter


def _form(
    request: Request,
    *,
    values: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    token = secrets.token_urlsafe(32)
    response = page(
        request,
        "notice.html",
        {
            "form_field": FORM_FIELD,
            "form_token": token,
            "categories": [(str(c), LABELS[c]) for c in NoticeCategory],
            "values": values or {},
            "error": error,
            "max_explanation": MAX_EXPLANATION,
        },
        status=status,
    )
    response.set_cookie(
        FORM_COOKIE,
        token,
        max_age=FORM_SECONDS,
        path="/notice",
        secure=services(request).settings.ui_secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response


def _closed() -> Response:
    return Response("The notice form is not offered here.\n", 404, SECURITY_HEADERS)


@router.get("/notice")
async def notice_form(request: Request) -> Response:
    """The notice form."""
    if not services(request).settings.notices_form:
        return _closed()
    return _form(request)


async def _body(request: Request) -> bytes | None:
    """The body, or ``None`` past ``MAX_BODY`` (not read further)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return bytes(body)


def _request(values: dict[str, str]) -> NoticeRequest:
    try:
        category = NoticeCategory(values.get("category", ""))
    except ValueError:
        raise NoticeRefused("choose what kind of illegal content it is") from None
    lines = [line.strip() for line in values.get("urls", "").splitlines()]
    name = values.get("name", "").strip() or None
    email = values.get("email", "").strip() or None
    reference = values.get("reference", "").strip() or None
    if email is not None and ("@" not in email or len(email) > 320 or " " in email):
        raise NoticeRefused("the e-mail address does not look like one")
    if (name and len(name) > 200) or (reference and len(reference) > 200):
        raise NoticeRefused("a name or reference is at most 200 characters")
    return NoticeRequest(
        urls=tuple(line for line in lines if line),
        category=category,
        explanation=values.get("explanation", ""),
        notifier=Notifier(kind=NotifierKind.USER, name=name, email=email, reference=reference)
        if name or email or reference
        else None,
        good_faith=values.get("good_faith") == "yes",
    )


@router.post("/notice")
async def send_notice(request: Request) -> Response:
    """Send the form: 303 to the fixed thank-you page; the form again with what to fix
    (422), 403 without the form's token, 413 too large, 429 over the rate limit."""
    svc = services(request)
    if not svc.settings.notices_form:
        return _closed()
    address = request.client.host if request.client else "unknown"
    if not _limiter(request).allow(address):
        return Response(
            "Too many notices from this address: please try again later.\n",
            429,
            {**SECURITY_HEADERS, "Retry-After": "60"},
        )
    raw = await _body(request)
    if raw is None:
        return Response("The notice is too large.\n", 413, SECURITY_HEADERS)
    try:
        parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return _form(request, error="The form could not be read.", status=400)
    values = {k: v[0] for k, v in parsed.items() if v}
    cookie = request.cookies.get(FORM_COOKIE, "")
    sent = values.get(FORM_FIELD, "")
    if not (
        same_origin(request)
        and cookie
        and sent
        and hmac.compare_digest(cookie.encode(), sent.encode())
    ):
        return _form(
            request,
            values=values,
            error="This form expired or came from another site. Please send it again.",
            status=403,
        )
    try:
        notice = _request(values)
        ack = await run_in_threadpool(
            receive,
            svc.store,
            notice,
            actor=FORM_ACTOR,
            channel=NoticeChannel.FORM,
            at=datetime.now(UTC),
            notifiers=svc.settings.notice_notifiers,
            endpoints=svc.endpoints,
        )
    except NoticeRefused as exc:
        return _form(request, values=values, error=f"{exc}.", status=422)
    response = RedirectResponse(f"/notice/received/{ack.notice.id}", status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


def _here(path: str) -> Response:
    """A redirect to ``path`` on this site: a Location with no scheme or host, so never
    one built from the request's Host header (Starlette's own slash redirect is)."""
    response = RedirectResponse(path, status_code=308)
    response.headers.update(SECURITY_HEADERS)
    return response


@router.api_route("/notice/", methods=["GET", "POST"])
async def notice_slash() -> Response:
    return _here("/notice")


@router.get("/notice/received/{notice_id}/")
async def received_slash(notice_id: Annotated[int, Path(ge=1, le=2**62)]) -> Response:
    return _here(f"/notice/received/{notice_id}")


@router.get("/notice/received/{notice_id}")
async def received(request: Request, notice_id: Annotated[int, Path(ge=1, le=2**62)]) -> Response:
    """The thank-you page: the notice's number and what happens next (nothing of the
    notice itself is shown: anyone can open this page)."""
    return page(request, "notice_received.html", {"notice_id": notice_id, "next": NEXT_STEPS})
