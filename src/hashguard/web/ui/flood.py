"""The flood guard's page for leads: entries paused because they matched too many
distinct items (by entry id and bank, never by hash), the guard's counts, and release
or tombstone, each audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from hashguard.domain.flood import FloodCounts, FloodFlag
from hashguard.domain.people import Permission
from hashguard.store.flood import FlagNotActive, UnknownFlag
from hashguard.web.services import Services
from hashguard.web.ui.common import services, when
from hashguard.web.ui.errors import UiRoute
from hashguard.web.ui.render import SECURITY_HEADERS, page
from hashguard.web.ui.session import SignedIn, UiError, require

router = APIRouter(route_class=UiRoute)

Lead = Annotated[SignedIn, Depends(require(Permission.FLOOD_MANAGE))]
FlagId = Annotated[int, Path(ge=1, le=2**62)]

#: flags shown: the pausing ones, and the latest others
SHOWN = 500
FLASHES = {
    "released": "The entry acts again; its counter restarted.",
    "tombstoned": "The entry was removed from its bank; it stays paused should an import "
    "bring it back.",
}


def _flood(svc: Services) -> tuple[list[FloodFlag], list[FloodFlag], FloodCounts]:
    paused = svc.store.flood.paused(limit=SHOWN)
    pausing = {flag.id for flag in paused}
    history = [f for f in svc.store.flood.history(limit=SHOWN) if f.id not in pausing]
    return paused, history, svc.store.flood.counts()


@router.get("/flood")
async def flood(
    request: Request, who: Lead, done: Annotated[str, Query(max_length=32)] = ""
) -> Response:
    paused, history, counts = await run_in_threadpool(_flood, services(request))
    return page(
        request,
        "flood.html",
        {
            "paused": paused,
            "history": history,
            "counts": counts,
            "when": when,
            "flash": FLASHES.get(done),
        },
    )


def _resolve(svc: Services, who: SignedIn, flag_id: int, *, tombstone: bool) -> None:
    try:
        if tombstone:
            svc.store.flood.tombstone(flag_id, actor=who.user.actor)
        else:
            svc.store.flood.release(flag_id, actor=who.user.actor)
    except UnknownFlag:
        raise UiError(404, "Not found", f"there is no flood flag #{flag_id}") from None
    except FlagNotActive as exc:
        raise UiError(409, "Refused", str(exc)) from None


def _back(done: str) -> Response:
    response = RedirectResponse(f"/ui/flood?done={done}", status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


@router.post("/flood/{flag_id}/release")
async def release(request: Request, flag_id: FlagId, who: Lead) -> Response:
    await run_in_threadpool(_resolve, services(request), who, flag_id, tombstone=False)
    return _back("released")


@router.post("/flood/{flag_id}/tombstone")
async def tombstone(request: Request, flag_id: FlagId, who: Lead) -> Response:
    await run_in_threadpool(_resolve, services(request), who, flag_id, tombstone=True)
    return _back("tombstoned")
