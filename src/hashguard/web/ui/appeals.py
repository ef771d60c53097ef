"""Appeals (DSA Art. 20) in the review UI: the case page's section (``_case_appeals.html``)
and its step, uphold or reverse, by a person who did not take the decision contested
(the service refuses anyone else whatever their role; the page offers them no buttons).
Deciding needs ``case.decide``; everyone who sees a case sees its appeals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from hashguard.domain.appeals import Appeal, Outcome
from hashguard.domain.cases import Case
from hashguard.domain.people import Permission
from hashguard.review import appeals as service
from hashguard.review.cases import ReviewError, StaleCase, UnknownCase
from hashguard.web.services import Services
from hashguard.web.ui.common import back_to_case, field, services, utcnow
from hashguard.web.ui.errors import UiRoute
from hashguard.web.ui.session import SignedIn, UiError, require

router = APIRouter(route_class=UiRoute)

Decider = Annotated[SignedIn, Depends(require(Permission.CASE_DECIDE))]
AppealId = Annotated[int, Path(ge=1, le=2**62)]

FLASHES = {
    "upheld": "The appeal was decided: the decision is upheld.",
    "reversed": "The appeal was decided: the decision is reversed and the restriction lifted.",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class AppealSection:
    appeals: tuple[Appeal, ...]
    #: ids of the open appeals the signed-in person may decide
    decidable: frozenset[int]

    @staticmethod
    def flash(key: str) -> str | None:
        return FLASHES.get(key)


def case_appeals(svc: Services, who: SignedIn, case: Case) -> AppealSection:
    """The section of ``case``'s page (read in a worker thread: it reads the store)."""
    found = tuple(svc.store.appeals.for_case(case.id))
    may = who.can(Permission.CASE_DECIDE)
    return AppealSection(
        appeals=found,
        decidable=frozenset(
            a.id for a in found if may and service.eligible(svc.store, a, who.user.actor)
        ),
    )


def _decide(
    svc: Services, who: SignedIn, appeal_id: int, outcome: Outcome, reason: str
) -> service.Decided:
    try:
        return service.decide(
            svc.store,
            appeal_id,
            outcome,
            actor=who.user.actor,
            reason=reason,
            at=utcnow(),
            allow_bank=svc.settings.review_allow_bank,
            endpoints=svc.endpoints,
        )
    except (service.UnknownAppeal, UnknownCase) as exc:
        raise UiError(404, "Not found", str(exc)) from None
    except (service.AppealError, ReviewError, StaleCase) as exc:
        status = 400 if isinstance(exc, service.InvalidAppeal) else 409
        raise UiError(status, "Refused", str(exc)) from None


@router.post("/appeals/{appeal_id}/decide")
async def decide_appeal(request: Request, appeal_id: AppealId, who: Decider) -> Response:
    """Uphold or reverse an open appeal, with a reason."""
    form = await request.form()
    try:
        outcome = Outcome(field(form, "outcome"))
    except ValueError:
        raise UiError(400, "Bad request", "outcome is uphold or reverse") from None
    reason = field(form, "reason")
    decided = await run_in_threadpool(_decide, services(request), who, appeal_id, outcome, reason)
    response = back_to_case(decided.appeal.case_id, appeal=str(decided.appeal.state))
    response.headers["location"] += "#appeals"
    return response
