"""The review pages: the queue here; the case page (``case``), its content (``reveal``;
a video's contact sheet: ``frames``),
and the dead letters, exposure and audit pages (``oversight``) included.

Every route depends on ``session.require`` (or ``require_any``): deny by default.
``install(app)`` renders UI errors app-wide (see ``errors``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from hashguard.domain.cases import Case, CaseState
from hashguard.domain.people import Permission
from hashguard.review.priority import by_priority
from hashguard.web.services import Services
from hashguard.web.ui import (
    appeals,
    case,
    flood,
    frames,
    notices,
    oversight,
    referrals,
    reports,
    reveal,
    stats,
)
from hashguard.web.ui.common import age, services, utcnow
from hashguard.web.ui.errors import UiRoute, install
from hashguard.web.ui.render import page
from hashguard.web.ui.session import SignedIn, UiError, require

__all__ = ["install", "router"]

router = APIRouter(route_class=UiRoute)
router.include_router(case.router)
router.include_router(reveal.router)
router.include_router(frames.router)
router.include_router(oversight.router)
router.include_router(flood.router)
router.include_router(referrals.router)
router.include_router(appeals.router)
router.include_router(reports.router)
router.include_router(notices.router)
router.include_router(stats.router)

Viewer = Annotated[SignedIn, Depends(require(Permission.QUEUE_VIEW))]

#: what the queue shows by default: cases someone still has to work on
NEEDING_WORK = (CaseState.OPEN, CaseState.CONFIRMED_ONCE, CaseState.ESCALATED)
#: cases read per state, and shown at most, newest first
QUEUE_READ = 1000
QUEUE_SHOWN = 200


def _states(state: str) -> tuple[CaseState, ...]:
    if state == "":
        return NEEDING_WORK
    if state == "all":
        return tuple(CaseState)
    try:
        return (CaseState(state),)
    except ValueError:
        raise UiError(400, "Bad request", f"there is no case state {state!r}") from None


def _queue(svc: Services, states: tuple[CaseState, ...], assignee: str | None) -> list[Case]:
    found = [
        c
        for s in states
        for c in svc.store.cases.list(
            state=s, assignee=assignee, limit=QUEUE_READ, newest_first=True
        )
    ]
    found.sort(key=lambda c: c.id, reverse=True)
    return found[:QUEUE_READ]


@router.get("/")
async def queue(
    request: Request,
    who: Viewer,
    state: Annotated[str, Query(max_length=32)] = "",
    mine: Annotated[str, Query(max_length=8)] = "",
    order: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    """Cases to work on, newest first (``order=priority``: in the queue's priority, each
    with its reason; ``review.priority``); ``state`` one state (or ``all``), ``mine``
    only the signed-in person's."""
    states = _states(state)
    only_mine = mine == "1"
    cases = await run_in_threadpool(
        _queue, services(request), states, who.user.name if only_mine else None
    )
    reasons: dict[int, str] = {}
    if order == "priority":
        ranked = by_priority(cases)
        cases = [c for c, _ in ranked]
        reasons = {c.id: p.reason for c, p in ranked}
    now = utcnow()
    return page(
        request,
        "queue.html",
        {
            "cases": cases[:QUEUE_SHOWN],
            "total": len(cases),
            "shown": QUEUE_SHOWN,
            "ages": {c.id: age(c.created_at, now) for c in cases[:QUEUE_SHOWN]},
            "state": state,
            "mine": only_mine,
            "states": [str(s) for s in CaseState],
            "by_priority": order == "priority",
            "reasons": reasons,
        },
    )
