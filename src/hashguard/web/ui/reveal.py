"""Seeing a case's content: the blurred preview, an audited reveal, the original.

A preview is not a reveal: it is made from the evidence on the server and is neither
recorded nor audited, and it never carries the original's bytes. A reveal is recorded
(``reveals``) and audited (``content.revealed``) before anything is shown; for
``review_reveal_seconds`` afterwards that session may fetch the original, and each
fetch is audited again by the vault (``evidence.revealed``). A reviewer who reached
``review_break_after_reveals`` in the window is reminded to take a break first
(``review.break_reminded``) and may go on anyway; one who reached
``review_reveal_limit`` is refused (429, ``review.reveal_refused``), told until when,
until the window passes or a lead grants more (``oversight``).
"""

from __future__ import annotations

import logging
import math
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from hashguard.domain.cases import Case
from hashguard.domain.people import Permission
from hashguard.evidence import EvidenceCorrupt, EvidenceError, Vault
from hashguard.hashing.video import sniff_video
from hashguard.review import derivatives
from hashguard.review.contact import SNIFF_BYTES, is_video
from hashguard.review.exposure import BreakRule, RevealLimit, RevealOutcome, reveal, reveal_open
from hashguard.web.services import Services
from hashguard.web.ui.common import (
    CaseId,
    back_to_case,
    evidence_of,
    field,
    kept_evidence,
    load_case,
    services,
    utcnow,
    when,
)
from hashguard.web.ui.errors import UiRoute
from hashguard.web.ui.render import page
from hashguard.web.ui.session import SignedIn, UiError, require

log = logging.getLogger("hashguard.web")
router = APIRouter(route_class=UiRoute)

Viewer = Annotated[SignedIn, Depends(require(Permission.QUEUE_VIEW))]
Revealer = Annotated[SignedIn, Depends(require(Permission.CASE_REVEAL))]

#: derivatives made at once (each may decode up to ``max_pixels``)
PREVIEW_SLOTS = 2
_NO_STORE = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def quiet_vault(request: Request, svc: Services) -> Vault:
    """The vault without its audit hook, for previews only (a preview is not a reveal)."""
    found: Vault | None = getattr(request.app.state, "ui_preview_vault", None)
    if found is None:
        audited = svc.vault()
        found = Vault(
            svc.store.evidence, svc.master_key(), audited.blob_dir, retention=audited.retention
        )
        request.app.state.ui_preview_vault = found
    return found


def kept_video(request: Request, svc: Services, case: Case) -> bool:
    """Whether the case's kept content is a video, reviewed as a contact sheet
    (``frames``): hashed as one, or, when it could not be decoded at all, kept bytes
    that start like an allowed video container (a truncated video still is one)."""
    if is_video(case.signals):
        return True
    signals = case.signals
    if signals is None or signals.pdq or signals.image_format is not None:
        return False
    item = evidence_of(svc, case)
    if item is None or item.destroyed_at is not None:
        return False
    try:
        data, _ = quiet_vault(request, svc).get(item.id)
    except EvidenceError:
        return False
    return sniff_video(data[:SNIFF_BYTES]) is not None


def _make_preview(request: Request, svc: Services, case_id: int) -> derivatives.Derivative:
    item_id = kept_evidence(svc, load_case(svc, case_id))
    try:
        data, _ = quiet_vault(request, svc).get(item_id)
    except EvidenceCorrupt:
        log.exception("evidence of case %s does not open", case_id)
        return derivatives.placeholder("the kept content does not open (see the server log)")
    except EvidenceError:
        raise UiError(404, "Not found", f"no content of case #{case_id} is kept") from None
    return derivatives.preview(data, max_pixels=svc.settings.max_pixels)


def preview_slots(request: Request) -> anyio.CapacityLimiter:
    found: anyio.CapacityLimiter | None = getattr(request.app.state, "ui_preview_slots", None)
    if found is None:
        found = anyio.CapacityLimiter(PREVIEW_SLOTS)
        request.app.state.ui_preview_slots = found
    return found


@router.get("/cases/{case_id}/preview")
async def case_preview(request: Request, case_id: CaseId, who: Viewer) -> Response:
    """A PNG: greyscale, blurred, at most 256 px; a placeholder for what does not decode."""
    svc = services(request)
    made = await anyio.to_thread.run_sync(
        _make_preview, request, svc, case_id, limiter=preview_slots(request)
    )
    headers = dict(_NO_STORE)
    headers["Content-Disposition"] = f'inline; filename="case-{case_id}-preview.png"'
    headers["X-Preview"] = "placeholder" if made.placeholder else "blurred"
    return Response(made.png, media_type="image/png", headers=headers)


def _original(svc: Services, who: SignedIn, case_id: int) -> bytes:
    case = load_case(svc, case_id)
    item_id = kept_evidence(svc, case)
    last = svc.store.people.last_reveal(who.user.id, case.id, who.session.id)
    if not reveal_open(last, utcnow(), seconds=svc.settings.review_reveal_seconds):
        raise UiError(
            403, "Reveal first", "the original is shown only for a while after you reveal it"
        )
    try:
        data, _ = svc.vault().get(item_id, actor=who.user.actor, reason=f"case:{case.id} reveal")
    except EvidenceError as exc:
        raise UiError(404, "Not found", str(exc)) from None
    return data


@router.get("/cases/{case_id}/original")
async def case_original(request: Request, case_id: CaseId, who: Revealer) -> Response:
    data = await run_in_threadpool(_original, services(request), who, case_id)
    media_type = derivatives.media_type(data)
    headers = dict(_NO_STORE)
    if media_type is None:  # not an image we show: a download, never rendered here
        media_type = "application/octet-stream"
        headers["Content-Disposition"] = f'attachment; filename="case-{case_id}.bin"'
    else:
        ext = media_type.rsplit("/", 1)[1]
        headers["Content-Disposition"] = f'inline; filename="case-{case_id}.{ext}"'
    return Response(data, media_type=media_type, headers=headers)


# -- reveal ---------------------------------------------------------------------------


def _reveal(
    request: Request, svc: Services, who: SignedIn, case_id: int, acknowledged: bool
) -> RevealOutcome:
    """Decide, record and audit the reveal (``review.exposure.reveal``). A video is
    revealed frame by frame from its contact sheet (``frames``), never whole."""
    case = load_case(svc, case_id)
    if kept_video(request, svc, case):
        raise UiError(
            409, "Reveal frames", "a video is revealed one frame at a time, from its contact sheet"
        )
    item_id = kept_evidence(svc, case)
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
    )


@router.post("/cases/{case_id}/reveal")
async def case_reveal(request: Request, case_id: CaseId, who: Revealer) -> Response:
    form = await request.form()
    acknowledged = field(form, "acknowledge_break") == "1"
    svc = services(request)
    outcome = await run_in_threadpool(_reveal, request, svc, who, case_id, acknowledged)
    return reveal_answer(request, svc, case_id, outcome, f"/ui/cases/{case_id}/reveal")


def reveal_answer(
    request: Request,
    svc: Services,
    case_id: int,
    outcome: RevealOutcome,
    action: str,
    *,
    revealed: Response | None = None,
) -> Response:
    """The answer to a reveal request: the refusal (429), the break reminder (whose
    "reveal anyway" posts to ``action`` again), or ``revealed`` (default: back to the
    case)."""
    if outcome.refused is not None:
        wait = max(1, math.ceil((outcome.refused.until - utcnow()).total_seconds()))
        response = page(
            request,
            "reveal_refused.html",
            {
                "case_id": case_id,
                "refused": outcome.refused,
                "limit": RevealLimit.of(svc.settings),
                "until": when(outcome.refused.until),
                "minutes": math.ceil(wait / 60),
            },
            status=429,
        )
        response.headers["Retry-After"] = str(wait)
        return response
    if outcome.reminded is not None:
        rule = BreakRule.of(svc.settings)
        return page(
            request,
            "break.html",
            {"case_id": case_id, "reveals": outcome.reminded, "rule": rule, "action": action},
        )
    return revealed if revealed is not None else back_to_case(case_id)
