"""A video case's contact sheet: its blurred greyscale frames, and the reveal of one frame.

The sheet is made from the kept evidence in an isolated worker (``review.contact``,
through the upload pool's ``call``: the scan's memory and time limits and video caps)
and kept briefly in the server's memory (derivatives only, never a clear frame, never
on disk), so the page and its frame images decode the video once. Frames are served
like the image preview: PNG, ``no-store``, never the original's bytes.

A frame is revealed on its own, with the same rules as an image (break reminder,
exposure limit, ``content.revealed`` with the frame's ``timestamp``): each revealed
frame counts as one reveal. For ``review_reveal_seconds`` afterwards that session may
fetch that one frame in colour; each fetch opens the evidence through the audited
vault (``evidence.revealed``) and decodes that frame again in a worker.
"""

from __future__ import annotations

import logging
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from hashguard.domain.cases import Case
from hashguard.domain.people import Permission
from hashguard.domain.scans import Outcome
from hashguard.evidence import EvidenceCorrupt, EvidenceError
from hashguard.hashing.isolate import PoolStopped, WorkerFailed
from hashguard.review import contact, derivatives
from hashguard.review.exposure import BreakRule, RevealLimit, RevealOutcome, reveal, reveal_open
from hashguard.web.services import Services
from hashguard.web.ui.common import (
    CaseId,
    field,
    kept_evidence,
    load_case,
    services,
    utcnow,
)
from hashguard.web.ui.errors import UiRoute
from hashguard.web.ui.render import SECURITY_HEADERS
from hashguard.web.ui.reveal import kept_video, preview_slots, quiet_vault, reveal_answer
from hashguard.web.ui.session import SignedIn, UiError, require

log = logging.getLogger("hashguard.web")
router = APIRouter(route_class=UiRoute)

Viewer = Annotated[SignedIn, Depends(require(Permission.QUEUE_VIEW))]
Revealer = Annotated[SignedIn, Depends(require(Permission.CASE_REVEAL))]
#: a frame by its time from the video's start, in milliseconds
FrameMs = Annotated[int, Path(ge=0, le=10**10)]
#: sheets kept in memory (each a few dozen derivatives of about 10 KB)
SHEETS_KEPT = 16
_IMAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def plan_of(svc: Services, case: Case) -> contact.SheetPlan:
    settings = svc.settings
    return contact.SheetPlan.of(
        case.matches,
        max_pixels=settings.max_pixels,
        every=settings.review_sheet_seconds,
        max_frames=settings.review_sheet_frames,
    )


def _cache(request: Request) -> contact.SheetCache:
    found: contact.SheetCache | None = getattr(request.app.state, "ui_contact_sheets", None)
    if found is None:
        found = contact.SheetCache(SHEETS_KEPT)
        request.app.state.ui_contact_sheets = found
    return found


def _make(request: Request, svc: Services, case: Case, item_id: str) -> contact.ContactSheet:
    try:
        data, _ = quiet_vault(request, svc).get(item_id)
    except EvidenceCorrupt:
        log.exception("evidence of case %s does not open", case.id)
        return contact.cannot_show(Outcome.ERROR, "the kept content does not open")
    except EvidenceError:
        raise UiError(404, "Not found", f"no content of case #{case.id} is kept") from None
    try:
        return svc.pool.call(contact.make_sheet, data, plan_of(svc, case))
    except WorkerFailed as exc:
        return contact.cannot_show(Outcome.UNDECODABLE, str(exc))
    except PoolStopped:
        log.exception("no worker made the contact sheet of case %s", case.id)
        return contact.cannot_show(Outcome.ERROR, "the decoding workers are not available")


def sheet_of(request: Request, svc: Services, case: Case) -> contact.ContactSheet:
    """The contact sheet of ``case`` (a video case with kept evidence, else a 404)."""
    item_id = kept_evidence(svc, case)
    if not kept_video(request, svc, case):
        raise UiError(404, "Not found", f"case #{case.id} is not a video")
    return _cache(request).get(
        (item_id, plan_of(svc, case)), lambda: _make(request, svc, case, item_id)
    )


async def case_sheet(request: Request, svc: Services, case: Case) -> contact.ContactSheet:
    """``sheet_of`` off the event loop, at most ``PREVIEW_SLOTS`` at once."""
    return await anyio.to_thread.run_sync(
        sheet_of, request, svc, case, limiter=preview_slots(request)
    )


def _png(data: bytes, name: str, kind: str) -> Response:
    headers = dict(_IMAGE_HEADERS)
    headers["Content-Disposition"] = f'inline; filename="{name}.png"'
    headers["X-Preview"] = kind
    return Response(data, media_type="image/png", headers=headers)


@router.get("/cases/{case_id}/frames/{ms}")
async def frame_preview(request: Request, case_id: CaseId, ms: FrameMs, who: Viewer) -> Response:
    """One frame of the sheet: greyscale, blurred, at most 256 px."""
    svc = services(request)
    case = await run_in_threadpool(load_case, svc, case_id)
    sheet = await case_sheet(request, svc, case)
    if sheet.problem is not None:
        made = derivatives.placeholder(sheet.reason)
        return _png(made.png, f"case-{case_id}-frame-{ms}", "placeholder")
    frame = sheet.frame(ms)
    if frame is None:
        raise UiError(404, "Not found", f"case #{case_id}'s contact sheet has no frame at {ms} ms")
    return _png(frame.png, f"case-{case_id}-frame-{ms}", "blurred")


# -- the reveal of one frame -------------------------------------------------------------


def _reveal_frame(
    request: Request, svc: Services, who: SignedIn, case_id: int, ms: int, acknowledged: bool
) -> RevealOutcome:
    case = load_case(svc, case_id)
    item_id = kept_evidence(svc, case)
    if sheet_of(request, svc, case).frame(ms) is None:
        raise UiError(404, "Not found", f"case #{case_id}'s contact sheet has no frame at {ms} ms")
    return reveal(
        svc.store.exposure,
        user_id=who.user.id,
        actor=who.user.actor,
        case_id=case.id,
        evidence_id=item_id,
        session_id=who.session.id,
        now=utcnow(),
        breaks=BreakRule.of(svc.settings),
        limit=RevealLimit.of(svc.settings),
        acknowledged=acknowledged,
        frame_ms=ms,
    )


@router.post("/cases/{case_id}/frames/{ms}/reveal")
async def frame_reveal(request: Request, case_id: CaseId, ms: FrameMs, who: Revealer) -> Response:
    form = await request.form()
    acknowledged = field(form, "acknowledge_break") == "1"
    svc = services(request)
    outcome = await anyio.to_thread.run_sync(
        _reveal_frame, request, svc, who, case_id, ms, acknowledged, limiter=preview_slots(request)
    )
    back = RedirectResponse(f"/ui/cases/{case_id}#frame-{ms}", status_code=303)
    back.headers.update(SECURITY_HEADERS)
    action = f"/ui/cases/{case_id}/frames/{ms}/reveal"
    return reveal_answer(request, svc, case_id, outcome, action, revealed=back)


def _frame_original(request: Request, svc: Services, who: SignedIn, case_id: int, ms: int) -> bytes:
    case = load_case(svc, case_id)
    item_id = kept_evidence(svc, case)
    last = svc.store.people.last_reveal(who.user.id, case.id, who.session.id, frame_ms=ms)
    if not reveal_open(last, utcnow(), seconds=svc.settings.review_reveal_seconds):
        raise UiError(403, "Reveal first", "a frame is shown only for a while after you reveal it")
    try:
        data, _ = svc.vault().get(
            item_id, actor=who.user.actor, reason=f"case:{case.id} frame {ms / 1000:g} s reveal"
        )
    except EvidenceError as exc:
        raise UiError(404, "Not found", str(exc)) from None
    try:
        shown = svc.pool.call(contact.reveal_frame, data, plan_of(svc, case).limits, ms)
    except (WorkerFailed, PoolStopped) as exc:
        raise UiError(503, "Cannot show", f"the frame could not be decoded: {exc}") from None
    if shown.png is None:
        raise UiError(422, "Cannot show", f"the frame could not be decoded: {shown.reason}")
    return shown.png


@router.get("/cases/{case_id}/frames/{ms}/original")
async def frame_original(request: Request, case_id: CaseId, ms: FrameMs, who: Revealer) -> Response:
    svc = services(request)
    data = await anyio.to_thread.run_sync(
        _frame_original, request, svc, who, case_id, ms, limiter=preview_slots(request)
    )
    return _png(data, f"case-{case_id}-frame-{ms}", "original")
