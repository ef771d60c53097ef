"""/v1/cases/{id}/appeals: the uploader's appeal (DSA Art. 20), sent by the platform.

The route hangs off the case, not the statement: the case is what the appeal reopens,
what the reviewer decides and what the platform already addresses by id (every
webhook carries it); the body names the statement of reasons contested, because one
case can hold several (one per sighting of an automated act) and the six months run
from that statement. Needs the ``appeals`` scope (the platform's token; ``notices``
belongs to hotlines and trusted flaggers, who never appeal for an uploader).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from hashguard.audit import token_actor
from hashguard.domain.appeals import NewAppeal
from hashguard.domain.tokens import Scope, Token
from hashguard.review import appeals as service
from hashguard.review.cases import StaleCase, UnknownCase
from hashguard.web.api.cases import CaseId, _load
from hashguard.web.deps import require, services
from hashguard.web.problems import ProblemError, problem_responses
from hashguard.web.schemas.appeals import AppealIn, AppealList, AppealOut
from hashguard.web.services import Services

router = APIRouter(prefix="/v1/cases", tags=["appeals"])

Platform = Annotated[Token, Depends(require(Scope.APPEALS))]
Svc = Annotated[Services, Depends(services)]


def _refusal(exc: Exception) -> ProblemError:
    if isinstance(exc, UnknownCase | service.UnknownStatement):
        return ProblemError(404, "Not found", str(exc))
    if isinstance(exc, service.AppealTooLate):
        return ProblemError(422, "Appeal out of time", str(exc))
    if isinstance(exc, service.InvalidAppeal):
        return ProblemError(422, "Invalid request", str(exc))
    return ProblemError(409, "Conflict", str(exc))


@router.post(
    "/{case_id}/appeals",
    status_code=201,
    response_model=AppealOut,
    responses={
        **problem_responses(404, 409, 422),
        200: {"model": AppealOut, "description": "The same appeal, sent again"},
    },
    summary="Send an uploader's appeal (DSA Art. 20)",
)
def send_appeal(
    case_id: CaseId, body: AppealIn, token: Platform, svc: Svc, response: Response
) -> AppealOut:
    """Contest the restriction that the statement of reasons ``statement`` explained,
    within six months of it: the case is reopened for a person who did not take that
    decision, who upholds or reverses it (``appeal.decided`` tells the platform, with
    the outcome's statement of reasons). 201: received; 200: the same appeal (same
    ``reference``, statement and explanation) was received before. 404: no such case, or
    the statement is not the case's. 409: the reference names another appeal, the
    statement was already appealed, or nothing is restricted any more. 422: too late
    (six months after the statement), or the text cannot be taken."""
    try:
        received = service.receive(
            svc.store,
            NewAppeal(
                case_id=case_id,
                statement_puid=body.statement,
                reference=body.reference,
                explanation=body.explanation,
            ),
            actor=token_actor(token),
            at=datetime.now(UTC),
        )
    except (service.AppealError, UnknownCase, StaleCase) as exc:
        raise _refusal(exc) from None
    if not received.new:
        response.status_code = 200
    return AppealOut.of(received.appeal)


@router.get("/{case_id}/appeals", response_model=AppealList, responses=problem_responses(404))
def case_appeals(case_id: CaseId, token: Platform, svc: Svc) -> AppealList:
    """The case's appeals, oldest first, with their outcomes."""
    _load(svc, case_id)
    return AppealList(appeals=[AppealOut.of(a) for a in svc.store.appeals.for_case(case_id)])
