"""Receiving a DSA Art. 16 notice (API or public form): the rules it must meet, who sent it
(a configured notifier goes first), its acknowledgement.

The rules are Art. 16(2)'s: the exact URL(s) or content ids, an explanation, the
notifier's name and e-mail, and a statement of good faith, except that a notice of
child sexual abuse material (Directive 2011/93/EU, Arts. 3-7) needs neither the
notifier's identity nor the statement. The acknowledgement is the answer (the notice
id, when it was received, what happens next) and, for the platform to e-mail the
notifier if it wants to, a signed ``notice.received`` webhook through the outbox:
hashguard itself sends no e-mail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from hashguard.actions.outbox import webhook_actions
from hashguard.domain.actions import EventType, NewAction, WebhookEndpoint
from hashguard.domain.notices import (
    PRIORITY_CONFIGURED,
    PRIORITY_DEFAULT,
    NewNotice,
    Notice,
    NoticeCategory,
    NoticeChannel,
    NoticeItem,
    Notifier,
    NotifierKind,
)
from hashguard.domain.text import unstorable
from hashguard.settings import NotifierSettings
from hashguard.store import Store

#: the most URLs (and the most content ids) one notice may name
MAX_ITEMS = 100
MAX_EXPLANATION = 5000
MAX_URL = 2000

NEXT_STEPS = (
    "The notice is queued: each URL or content id is resolved to the platform's content, "
    "checked against the lists of known material and reviewed by a person. The notifier "
    "is told of the decision."
)


class NoticeRefused(ValueError):
    """The notice does not meet Art. 16(2) (the message says what is missing)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class NoticeRequest:
    """A notice as sent, before the rules are checked."""

    urls: Sequence[str] = ()
    content_ids: Sequence[str] = ()
    category: NoticeCategory
    explanation: str
    notifier: Notifier | None = None
    good_faith: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Acknowledgement:
    notice: Notice
    next_steps: str = NEXT_STEPS


def check(request: NoticeRequest) -> None:
    """Raise ``NoticeRefused`` unless ``request`` meets Art. 16(2)."""
    if not request.urls and not request.content_ids:
        raise NoticeRefused("a notice names at least one URL or content id")
    if len(request.urls) > MAX_ITEMS or len(request.content_ids) > MAX_ITEMS:
        raise NoticeRefused(f"a notice names at most {MAX_ITEMS} URLs and {MAX_ITEMS} content ids")
    notifier = request.notifier
    said = (notifier.name, notifier.email, notifier.reference) if notifier else ()
    for text in (*request.urls, *request.content_ids, request.explanation, *said):
        if text is None:
            continue
        why = unstorable(text)
        if why is not None:
            raise NoticeRefused(f"a text {why}")
    for url in request.urls:
        if not url.startswith(("https://", "http://")) or len(url) > MAX_URL:
            raise NoticeRefused("each URL is an http(s) URL of at most 2000 characters")
    if not request.explanation.strip():
        raise NoticeRefused("a notice explains why the content is illegal")
    if len(request.explanation) > MAX_EXPLANATION:
        raise NoticeRefused(f"the explanation is at most {MAX_EXPLANATION} characters")
    if request.category.csam:
        return  # Art. 16(2)(c): no identity, no statement needed
    if notifier is None or not notifier.name or not notifier.email:
        raise NoticeRefused("a notice of this category gives the notifier's name and e-mail")
    if not request.good_faith:
        raise NoticeRefused("a notice of this category states that it is sent in good faith")


def configured_notifier(
    notifiers: Mapping[str, NotifierSettings], token_name: str | None
) -> tuple[str, NotifierSettings] | None:
    """The configured notifier a token (by name) is bound to, if any."""
    if token_name is None:
        return None
    for key, notifier in notifiers.items():
        if token_name in notifier.tokens:
            return key, notifier
    return None


def acknowledgement_actions(
    notice_id: int, request: NoticeRequest, endpoints: Sequence[WebhookEndpoint], at: datetime
) -> list[NewAction]:
    """``notice.received`` to every endpoint that wants it: the notice id, when, the
    category, and whom to acknowledge (the notifier's e-mail, for the platform's mail)."""
    notifier = request.notifier
    return webhook_actions(
        EventType.NOTICE_RECEIVED,
        {
            "notice_id": notice_id,
            "received_at": at.isoformat(),
            "category": str(request.category),
            "items": len(request.urls) + len(request.content_ids),
            "notifier": None
            if notifier is None
            else {"kind": str(notifier.kind), "name": notifier.name, "email": notifier.email},
            "reference": notifier.reference if notifier else None,
            "next_steps": NEXT_STEPS,
        },
        endpoints,
        key=f"notice:{notice_id}",
        subject=f"notice:{notice_id}",
        at=at,
    )


def receive(
    store: Store,
    request: NoticeRequest,
    *,
    actor: str,
    channel: NoticeChannel,
    at: datetime,
    notifiers: Mapping[str, NotifierSettings],
    endpoints: Sequence[WebhookEndpoint] = (),
    token_id: int | None = None,
    token_name: str | None = None,
) -> Acknowledgement:
    """Check and record the notice, its audit event and its acknowledgement webhooks in
    one transaction. A notice sent with a token bound to a configured notifier is that
    notifier's (its kind and name as configured) and goes first; anything else keeps
    what it says of its sender, with no priority. Raises ``NoticeRefused``."""
    check(request)
    notifier = request.notifier or Notifier(kind=NotifierKind.USER)
    priority = PRIORITY_DEFAULT
    bound = configured_notifier(notifiers, token_name) if channel is NoticeChannel.API else None
    if bound is not None:
        key, configured = bound
        notifier = Notifier(
            kind=configured.kind,
            name=configured.name,
            email=notifier.email,
            reference=notifier.reference,
            configured=key,
        )
        priority = PRIORITY_CONFIGURED
    items = tuple(NoticeItem(url=u) for u in request.urls) + tuple(
        NoticeItem(content_id=c) for c in request.content_ids
    )
    notice = store.notices.receive(
        NewNotice(
            items=items,
            category=request.category,
            explanation=request.explanation,
            notifier=notifier,
            good_faith=request.good_faith,
            channel=channel,
            priority=priority,
            token_id=token_id,
        ),
        actor=actor,
        at=at,
        actions=lambda notice_id: acknowledgement_actions(notice_id, request, endpoints, at),
    )
    return Acknowledgement(notice=notice)
