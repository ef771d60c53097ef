"""POST /v1/notices: a DSA Art. 16 notice from a hotline, a trusted flagger or a platform."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends

from hashguard.audit import token_actor
from hashguard.domain.notices import NoticeCategory, NoticeChannel, Notifier
from hashguard.domain.tokens import Scope, Token
from hashguard.notices.intake import NoticeRefused, NoticeRequest, receive
from hashguard.web.deps import require, services
from hashguard.web.problems import ProblemError, problem_responses
from hashguard.web.schemas.notices import NoticeAck, NoticeIn
from hashguard.web.services import Services

router = APIRouter(prefix="/v1", tags=["notices"])


@router.post(
    "/notices",
    status_code=202,
    response_model=NoticeAck,
    responses=problem_responses(422),
    summary="Send a notice (DSA Art. 16)",
)
def send_notice(
    body: NoticeIn,
    token: Annotated[Token, Depends(require(Scope.NOTICES))],
    svc: Annotated[Services, Depends(services)],
) -> NoticeAck:
    """Receive a notice of illegal content: the URLs or the platform's content ids it
    names are resolved to the content through the platform's callback, matched against
    the lists through the one pipeline and reviewed by a person (a case is opened
    whether or not the content matched). 202 is the acknowledgement of receipt; a
    ``notice.received`` webhook lets the platform acknowledge it to the notifier by
    e-mail. A token bound to a configured trusted flagger or hotline sends as that
    notifier, and its notices go first."""
    notifier = (
        None
        if body.notifier is None
        else Notifier(
            kind=body.notifier.kind,
            name=body.notifier.name,
            email=body.notifier.email,
            reference=body.notifier.reference,
        )
    )
    request = NoticeRequest(
        urls=tuple(body.urls),
        content_ids=tuple(body.content_ids),
        category=NoticeCategory(body.category),
        explanation=body.explanation,
        notifier=notifier,
        good_faith=body.good_faith,
    )
    try:
        ack = receive(
            svc.store,
            request,
            actor=token_actor(token),
            channel=NoticeChannel.API,
            at=datetime.now(UTC),
            notifiers=svc.settings.notice_notifiers,
            endpoints=svc.endpoints,
            token_id=token.id,
            token_name=token.name,
        )
    except NoticeRefused as exc:
        raise ProblemError(422, "Notice refused", str(exc)) from None
    notice = ack.notice
    return NoticeAck(
        notice_id=notice.id,
        state=notice.state,
        received_at=notice.received_at,
        priority=notice.priority,
        items=len(notice.items),
        next_steps=ack.next_steps,
    )
