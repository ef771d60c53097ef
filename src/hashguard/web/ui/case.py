"""The case page: everything a reviewer needs to decide without the bank's media, and
the steps taken there: decisions (confirm, false positive, escalate) and assignment.

The confirmation that makes a case confirmed (reportable) needs ``case.confirm_final``
(a lead); the page says so and offers no confirm button to anyone else, and the step
itself is refused (403) if sent anyway. Every step is made against the version of the
case the page showed: if it changed meanwhile the step is refused (409).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from hashguard.domain.banks import Bank
from hashguard.domain.cases import Case, CaseEvent, CaseState
from hashguard.domain.evidence import EvidenceItem
from hashguard.domain.people import Permission
from hashguard.review import cases as review
from hashguard.review.contact import is_video
from hashguard.review.decide import Verdict, apply_verdict, confirms_finally
from hashguard.review.exposure import BreakRule, reveal_open
from hashguard.review.reference import from_settings
from hashguard.web.services import Services
from hashguard.web.ui import frames, reports
from hashguard.web.ui.appeals import case_appeals
from hashguard.web.ui.common import (
    CaseId,
    age,
    back_to_case,
    evidence_of,
    field,
    int_field,
    load_case,
    services,
    utcnow,
    when,
)
from hashguard.web.ui.errors import UiRoute
from hashguard.web.ui.feedback import case_feedback
from hashguard.web.ui.referrals import case_referrals
from hashguard.web.ui.render import page
from hashguard.web.ui.reveal import kept_video
from hashguard.web.ui.session import SignedIn, UiError, require, require_any
from hashguard.web.ui.statements import case_statements

router = APIRouter(route_class=UiRoute)

Viewer = Annotated[SignedIn, Depends(require(Permission.QUEUE_VIEW))]
Decider = Annotated[SignedIn, Depends(require(Permission.CASE_DECIDE))]
#: taking a case needs case.decide, giving it to someone else case.assign
Assigner = Annotated[SignedIn, Depends(require_any(Permission.CASE_DECIDE, Permission.CASE_ASSIGN))]

#: the answers of ``?done=``: fixed texts, never the query's own
FLASHES = {
    "confirm": "Your confirmation was recorded.",
    "false_positive": "Marked as a false positive: its hashes went to the allow bank.",
    "escalate": "The case was escalated.",
    "assign": "The assignment was changed.",
}
_CONFLICTS = (review.InvalidTransition, review.SameReviewer)
#: what an allow bank named on the form may be called (as ``review_allow_bank``)
ALLOW_BANK_NAME = r"[a-z0-9][a-z0-9_.-]{0,99}"


def _reviewers(svc: Services) -> list[str]:
    return [
        u.name
        for u in svc.store.people.list_users()
        if u.can(Permission.CASE_DECIDE) and not u.disabled
    ]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Loaded:
    case: Case
    history: list[CaseEvent]
    banks: dict[str, Bank | None]
    evidence: EvidenceItem | None
    reveals: int
    revealed: bool
    reviewers: list[str]
    #: the frames of a video this session revealed lately (by ms)
    revealed_frames: set[int]


def _load(svc: Services, who: SignedIn, case_id: int) -> _Loaded:
    store, now = svc.store, utcnow()
    case = load_case(svc, case_id)
    rule = BreakRule.of(svc.settings)
    last = store.people.last_reveal(who.user.id, case.id, who.session.id)
    opened = now - timedelta(seconds=svc.settings.review_reveal_seconds)
    return _Loaded(
        case=case,
        history=store.cases.history(case.id),
        banks={name: store.banks.find(name) for name in sorted({m.bank for m in case.matches})},
        evidence=evidence_of(svc, case),
        reveals=store.people.reveals_since(who.user.id, rule.since(now)),
        revealed=who.can(Permission.CASE_REVEAL)
        and reveal_open(last, now, seconds=svc.settings.review_reveal_seconds),
        reviewers=_reviewers(svc) if who.can(Permission.CASE_ASSIGN) else [],
        revealed_frames=store.people.revealed_frames(who.user.id, case.id, who.session.id, opened)
        if who.can(Permission.CASE_REVEAL) and is_video(case.signals)
        else set(),
    )


@router.get("/cases/{case_id}")
async def case_page(
    request: Request,
    case_id: CaseId,
    who: Viewer,
    done: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    svc = services(request)
    loaded = await run_in_threadpool(_load, svc, who, case_id)
    report = await run_in_threadpool(
        reports.case_report, svc, who, loaded.case, request.query_params.get("reported", "")
    )
    case, settings = loaded.case, svc.settings
    needs_lead = confirms_finally(case, second_confirmation=settings.review_second_confirmation)
    confirmed_by_me = who.user.name in case.confirmers
    evidence = loaded.evidence
    kept = evidence is not None and evidence.destroyed_at is None
    video = kept and await run_in_threadpool(kept_video, request, svc, case)
    sheet = await frames.case_sheet(request, svc, case) if video else None
    can_decide = who.can(Permission.CASE_DECIDE) and not case.state.final
    flash = FLASHES.get(done)
    rule = BreakRule.of(settings)
    referrals = await run_in_threadpool(case_referrals, svc, who, case)
    feedback = await run_in_threadpool(case_feedback, svc.store, case.id)
    statements = await run_in_threadpool(case_statements, svc.store, case.id)
    appeals = await run_in_threadpool(case_appeals, svc, who, case)
    return page(
        request,
        "case.html",
        {
            "case": case,
            "history": loaded.history,
            "banks": loaded.banks,
            "evidence": evidence,
            "kept": kept,
            "reveals": loaded.reveals,
            "rule": rule,
            "revealed": loaded.revealed and kept and not video,
            "video": video,
            "sheet": sheet,
            "marks": sheet.marks(case.matches) if sheet is not None else {},
            "revealed_frames": loaded.revealed_frames if kept else set(),
            "sheet_every": settings.review_sheet_seconds,
            "sheet_frames": settings.review_sheet_frames,
            "reveal_seconds": int(settings.review_reveal_seconds),
            "can_reveal": who.can(Permission.CASE_REVEAL) and kept,
            "can_decide": can_decide,
            "can_confirm": can_decide
            and not confirmed_by_me
            and (not needs_lead or who.can(Permission.CASE_CONFIRM_FINAL)),
            "can_escalate": can_decide and case.state is not CaseState.ESCALATED,
            "needs_lead": needs_lead and not case.state.final,
            "confirmed_by_me": confirmed_by_me,
            "lead": who.can(Permission.CASE_CONFIRM_FINAL),
            "allow_bank": settings.review_allow_bank,
            "can_take": who.can(Permission.CASE_DECIDE)
            and not case.state.final
            and case.assignee != who.user.name,
            "can_release": case.assignee == who.user.name
            and not case.state.final
            and who.can(Permission.CASE_DECIDE),
            "can_assign": who.can(Permission.CASE_ASSIGN) and not case.state.final,
            "reviewers": loaded.reviewers,
            "flash": f"{flash} The case is now {case.state}." if flash else None,
            "restored": request.query_params.get("restored", "").isdigit()
            and int(request.query_params["restored"]),
            "undecodable": case.signals is not None and not case.signals.pdq and not video,
            "age": age(case.created_at, utcnow()),
            "when": when,
            "referrals": referrals,
            "report_section": report,
            "feedback": feedback,
            "statements": statements,
            "appeals": appeals,
        },
    )


# -- decide and assign ------------------------------------------------------------------


def _refusal(exc: Exception) -> UiError:
    if isinstance(exc, review.StaleCase):
        return UiError(409, "The case changed", str(exc))
    if isinstance(exc, _CONFLICTS):
        return UiError(409, "Refused", str(exc))
    return UiError(400, "Refused", str(exc))


def _decide(
    svc: Services,
    who: SignedIn,
    case_id: int,
    verdict: Verdict,
    *,
    reason: str,
    version: int,
    allow_bank: str,
) -> tuple[Case, int]:
    settings = svc.settings
    case = load_case(svc, case_id)
    if case.version != version:
        raise _refusal(review.StaleCase(case_id, version, case.version))
    if (
        verdict is Verdict.CONFIRM
        and confirms_finally(case, second_confirmation=settings.review_second_confirmation)
        and not who.can(Permission.CASE_CONFIRM_FINAL)
    ):
        raise UiError(
            403,
            "Not allowed",
            "this confirmation makes the case confirmed (reportable): only a lead may give it",
        )
    try:
        decided = apply_verdict(
            svc.store,
            case_id,
            verdict,
            actor=who.user.actor,
            reason=reason,
            second_confirmation=settings.review_second_confirmation,
            allow_bank=allow_bank,
            endpoints=svc.endpoints,
            reference=from_settings(settings, svc.store, actor=who.user.actor),
            version=version,
        )
    except (review.ReviewError, review.StaleCase) as exc:
        raise _refusal(exc) from None
    except review.UnknownCase:
        raise UiError(404, "Not found", f"there is no case #{case_id}") from None
    return decided.case, len(decided.notes)


@router.post("/cases/{case_id}/decide")
async def case_decide(request: Request, case_id: CaseId, who: Decider) -> Response:
    svc = services(request)
    form = await request.form()
    try:
        verdict = Verdict(field(form, "verdict"))
    except ValueError:
        raise UiError(400, "Bad request", "verdict: confirm, false_positive or escalate") from None
    version = int_field(form, "version")
    allow_bank = field(form, "allow_bank").strip() or svc.settings.review_allow_bank
    if allow_bank != svc.settings.review_allow_bank:
        if not who.can(Permission.CASE_CONFIRM_FINAL):
            raise UiError(403, "Not allowed", "only a lead may name another allow bank")
        if not re.fullmatch(ALLOW_BANK_NAME, allow_bank):
            raise UiError(400, "Bad request", f"{allow_bank!r} is not a bank name")
    _, restored = await run_in_threadpool(
        _decide,
        svc,
        who,
        case_id,
        verdict,
        reason=field(form, "reason"),
        version=version,
        allow_bank=allow_bank,
    )
    extra = {"restored": str(restored)} if restored else {}
    return back_to_case(case_id, done=str(verdict), **extra)


def _assign(
    svc: Services, who: SignedIn, case_id: int, assignee: str | None, version: int, reason: str
) -> Case:
    case = load_case(svc, case_id)
    if assignee == who.user.name:
        if not who.can(Permission.CASE_DECIDE):
            raise UiError(403, "Not allowed", "you do not review cases yourself")
    elif assignee is None and case.assignee == who.user.name and who.can(Permission.CASE_DECIDE):
        pass  # giving back one's own case
    elif not who.can(Permission.CASE_ASSIGN):
        raise UiError(403, "Not allowed", "only a lead or an admin gives cases to others")
    elif assignee is not None:
        person = svc.store.people.find_user(assignee)
        if person is None or not person.can(Permission.CASE_DECIDE):
            raise UiError(400, "Refused", f"{assignee} is not someone who reviews cases")
    try:
        return review.assign(
            svc.store, case_id, assignee, actor=who.user.actor, reason=reason, version=version
        )
    except (review.ReviewError, review.StaleCase) as exc:
        raise _refusal(exc) from None


@router.post("/cases/{case_id}/assign")
async def case_assign(request: Request, case_id: CaseId, who: Assigner) -> Response:
    """Take a case (``assignee`` your own name), give it back (empty), or, with
    ``case.assign``, give it to someone who reviews."""
    form = await request.form()
    assignee = field(form, "assignee").strip() or None
    version = int_field(form, "version")
    reason = field(form, "reason").strip()
    await run_in_threadpool(_assign, services(request), who, case_id, assignee, version, reason)
    return back_to_case(case_id, done="assign")
