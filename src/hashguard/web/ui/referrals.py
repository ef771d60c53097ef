"""Hotline referrals in the review UI: the case page's section (``_case_referrals.html``)
and its steps — open a task for a configured hotline, mark it done with the hotline's
reference, cancel it — and ``/ui/referrals``, the tasks still to file.

Opening and closing need ``referrals.manage`` (reviewers and leads); everyone who sees
a case sees its referrals. Only a confirmed case gets a task. Nothing is sent to a
hotline: a person files the facts on the hotline's own web form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from hashguard.domain.cases import Case
from hashguard.domain.people import Permission
from hashguard.domain.referrals import (
    MAX_REFERENCE,
    Hotline,
    ReferralState,
    ReferralTask,
)
from hashguard.review import referrals as service
from hashguard.web.services import Services
from hashguard.web.ui.common import CaseId, back_to_case, field, load_case, services, utcnow, when
from hashguard.web.ui.errors import UiRoute
from hashguard.web.ui.render import SECURITY_HEADERS, page
from hashguard.web.ui.session import SignedIn, UiError, require

router = APIRouter(route_class=UiRoute)

Manager = Annotated[SignedIn, Depends(require(Permission.REFERRALS_MANAGE))]
TaskId = Annotated[int, Path(ge=1, le=2**62)]

#: the answers of ``?referral=`` (case page) and ``?done=`` (list): fixed texts
FLASHES = {
    "opened": "The referral task was opened: file the facts on the hotline's form, then "
    "mark it done with the hotline's reference.",
    "done": "The referral was marked done with the hotline's reference.",
    "cancelled": "The referral task was cancelled.",
}
#: tasks the list shows at most
SHOWN = 500


@dataclass(frozen=True, kw_only=True, slots=True)
class ReferralSection:
    """What the case page's referral section shows."""

    tasks: tuple[ReferralTask, ...]
    #: the configured hotlines the case may still get a task for
    openable: tuple[Hotline, ...]
    configured: Mapping[str, Hotline]
    referable: bool
    can_manage: bool
    max_reference: int = MAX_REFERENCE

    def name(self, key: str) -> str:
        hotline = self.configured.get(key)
        return hotline.name if hotline is not None else key

    @staticmethod
    def flash(key: str) -> str | None:
        return FLASHES.get(key)


def case_referrals(svc: Services, who: SignedIn, case: Case) -> ReferralSection:
    """The section of ``case``'s page (read in a worker thread: it reads the store)."""
    configured = service.hotlines_of(svc.settings)
    found = service.of_case(svc.store, case, configured)
    return ReferralSection(
        tasks=found.tasks,
        openable=found.openable,
        configured=configured,
        referable=found.referable,
        can_manage=who.can(Permission.REFERRALS_MANAGE),
    )


def _refusal(exc: Exception) -> UiError:
    if isinstance(exc, service.UnknownReferral):
        return UiError(404, "Not found", str(exc))
    if isinstance(exc, service.UnknownCase):
        return UiError(404, "Not found", str(exc))
    if isinstance(exc, service.AlreadyReferred | service.NotReferable | service.ReferralClosed):
        return UiError(409, "Refused", str(exc))
    return UiError(400, "Refused", str(exc))


_REFUSED = (
    service.ReferralError,
    service.ReferralClosed,
    service.UnknownReferral,
    service.UnknownCase,
)


def _back(task: ReferralTask, done: str, to_list: bool) -> Response:
    if not to_list:
        response = back_to_case(task.case_id, referral=done)
        response.headers["location"] += "#referrals"
        return response
    response = RedirectResponse(f"/ui/referrals?done={done}", status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


# -- steps --------------------------------------------------------------------------------


def _open(svc: Services, who: SignedIn, case_id: int, hotline: str) -> ReferralTask:
    load_case(svc, case_id)  # 404 for a case that does not exist
    try:
        task, _ = service.open_referral(
            svc.store,
            case_id,
            hotline,
            hotlines=service.hotlines_of(svc.settings),
            actor=who.user.actor,
            at=utcnow(),
        )
    except _REFUSED as exc:
        raise _refusal(exc) from None
    return task


@router.post("/cases/{case_id}/referrals")
async def open_referral(request: Request, case_id: CaseId, who: Manager) -> Response:
    """Open a referral task for a confirmed case and a configured hotline (or show the
    one already open)."""
    form = await request.form()
    hotline = field(form, "hotline").strip()
    task = await run_in_threadpool(_open, services(request), who, case_id, hotline)
    return _back(task, "opened", to_list=False)


def _close(
    svc: Services, who: SignedIn, task_id: int, *, reference: str | None, reason: str | None
) -> ReferralTask:
    try:
        if reference is not None:
            return service.mark_done(
                svc.store, task_id, reference, actor=who.user.actor, at=utcnow()
            )
        assert reason is not None
        return service.cancel(svc.store, task_id, reason, actor=who.user.actor, at=utcnow())
    except _REFUSED as exc:
        raise _refusal(exc) from None


@router.post("/referrals/{task_id}/done")
async def referral_done(request: Request, task_id: TaskId, who: Manager) -> Response:
    """The report was filed on the hotline's form: record the hotline's reference."""
    form = await request.form()
    reference = field(form, "reference")
    to_list = field(form, "back") == "list"
    task = await run_in_threadpool(
        lambda: _close(services(request), who, task_id, reference=reference, reason=None)
    )
    return _back(task, "done", to_list)


@router.post("/referrals/{task_id}/cancel")
async def referral_cancel(request: Request, task_id: TaskId, who: Manager) -> Response:
    """Cancel an open task, saying why."""
    form = await request.form()
    reason = field(form, "reason")
    to_list = field(form, "back") == "list"
    task = await run_in_threadpool(
        lambda: _close(services(request), who, task_id, reference=None, reason=reason)
    )
    return _back(task, "cancelled", to_list)


# -- the list -----------------------------------------------------------------------------


def _states(state: str) -> ReferralState | None:
    if state == "":
        return ReferralState.OPEN
    if state == "all":
        return None
    try:
        return ReferralState(state)
    except ValueError:
        raise UiError(400, "Bad request", f"there is no referral state {state!r}") from None


@router.get("/referrals")
async def referrals_page(
    request: Request,
    who: Manager,
    state: Annotated[str, Query(max_length=16)] = "",
    done: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    """Referral tasks (open ones by default; ``state`` one state or ``all``), oldest first."""
    svc = services(request)
    chosen = _states(state)
    tasks = await run_in_threadpool(lambda: svc.store.referrals.list(state=chosen, limit=SHOWN))
    configured = service.hotlines_of(svc.settings)
    return page(
        request,
        "referrals.html",
        {
            "tasks": tasks,
            "state": state,
            "states": [str(s) for s in ReferralState],
            "names": {key: h.name for key, h in configured.items()},
            "configured": configured,
            "flash": FLASHES.get(done),
            "shown": SHOWN,
            "when": when,
            "max_reference": MAX_REFERENCE,
        },
    )
