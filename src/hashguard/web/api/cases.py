"""/v1/cases: the review cases, read and decided with API tokens. Never the content's bytes.

Reading needs ``cases:read``. Deciding and assigning need ``cases:review`` and a token
that acts for a person (``hashguard tokens create --user NAME``) whose role allows the
step, as in the review UI: ``case.decide`` to confirm (the first confirmation), mark a
false positive, escalate or take a case; ``case.confirm_final`` (a lead) for the
confirmation that makes a case confirmed, i.e. reportable, and to name another allow
bank than the server's; ``case.assign`` to give a case to someone else. A token never
does more than its person may: one that acts for a person who may not see the queue
(an auditor) or who is disabled reads nothing either. Each step is recorded as
``token:<id>/as:<name>``, so the two-person rule counts the person, whichever way
(UI, API, CLI) they decided.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from hashguard.domain.cases import Case, CaseState
from hashguard.domain.people import NAME_PATTERN, Permission, User
from hashguard.domain.tokens import Scope, Token
from hashguard.review import cases as review
from hashguard.review.decide import Verdict, apply_verdict, confirms_finally
from hashguard.review.priority import by_priority
from hashguard.review.reference import from_settings
from hashguard.web.deps import require, services
from hashguard.web.problems import ProblemError, problem_responses
from hashguard.web.schemas.cases import (
    AssigneeIn,
    CaseDetailOut,
    CaseOut,
    CasePage,
    DecisionIn,
    StatementList,
    StatementOut,
)
from hashguard.web.services import Services

router = APIRouter(prefix="/v1/cases", tags=["cases"])

Reader = Annotated[Token, Depends(require(Scope.CASES_READ))]
Reviewer = Annotated[Token, Depends(require(Scope.CASES_REVIEW))]
Svc = Annotated[Services, Depends(services)]
#: ids up to 2**53 - 1: a JSON number any client reads exactly
MAX_ID = 2**53 - 1
CaseId = Annotated[int, Path(ge=1, le=MAX_ID)]

#: Most cases on one page.
MAX_PAGE = 500

#: how many cases of each state ``order=priority`` ranks (the oldest)
PRIORITY_WINDOW = 5000


def _not_allowed(detail: str) -> ProblemError:
    return ProblemError(403, "Not allowed", detail)


def _owner(svc: Services, token: Token) -> User | None:
    owner = svc.store.people.token_owner(token.id)
    if owner is not None and owner.disabled:
        raise _not_allowed(f"this token acts for {owner.name}, who is disabled")
    return owner


def _person(svc: Services, token: Token) -> User:
    """The person the token acts for: a case is decided by a person, never by a bare token."""
    owner = _owner(svc, token)
    if owner is None:
        raise _not_allowed(
            "this token acts for no person: deciding and assigning cases needs a token "
            "made with `hashguard tokens create --user NAME`"
        )
    return owner


def _permit(person: User, permission: Permission, step: str) -> None:
    if not person.can(permission):
        raise _not_allowed(
            f"{person.name} ({person.role}) may not {step}: the role lacks '{permission}'"
        )


def _reader(svc: Services, token: Token) -> None:
    """A token that acts for a person reads only what that person may see."""
    owner = _owner(svc, token)
    if owner is not None:
        _permit(owner, Permission.QUEUE_VIEW, "see cases")


def _load(svc: Services, case_id: int) -> Case:
    try:
        return svc.store.cases.get(case_id)
    except review.UnknownCase:
        raise ProblemError(404, "Not found", f"there is no case #{case_id}") from None


def _detail(svc: Services, case: Case) -> CaseDetailOut:
    return CaseDetailOut.with_history(case, svc.store.cases.history(case.id))


def _refusal(exc: Exception) -> ProblemError:
    if isinstance(exc, review.UnknownCase):
        return ProblemError(404, "Not found", str(exc))
    if isinstance(exc, review.ReasonRequired):
        return ProblemError(422, "Invalid request", str(exc))
    return ProblemError(409, "Conflict", str(exc))


@router.get("", response_model=CasePage)
def list_cases(
    token: Reader,
    svc: Svc,
    state: Annotated[list[CaseState] | None, Query(description="repeat for several")] = None,
    assignee: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    order: Literal["oldest", "newest", "priority"] = "oldest",
    after: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="the `next` of the page before")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> CasePage:
    """Cases (oldest first, or ``order=newest``), optionally only those in the given
    states or assigned to one person. A page ends with ``next``: ask again with
    ``after=<next>`` (and the same filters and order) for the page after it.

    ``order=priority``: the queue's priority (exact match of the most severe category,
    then PDQ distance, then classifier score, then age; ``review.priority``), each case
    with the reason; one page of the first ``limit`` among the oldest ``PRIORITY_WINDOW``
    cases of each state, paged by ``after`` in the ranking as it stands."""
    _reader(svc, token)
    if order == "priority":
        return _by_priority(svc, state, assignee, after, limit)
    newest = order == "newest"
    states: list[CaseState | None] = list(dict.fromkeys(state)) if state else [None]
    found = {
        case.id: case
        for wanted in states
        for case in svc.store.cases.list(
            state=wanted,
            assignee=assignee,
            limit=limit + 1,
            newest_first=newest,
            after_id=after,
        )
    }
    ordered = sorted(found.values(), key=lambda case: case.id, reverse=newest)
    page = ordered[:limit]
    more = len(ordered) > limit
    return CasePage(cases=[CaseOut.of(c) for c in page], next=page[-1].id if more else None)


def _by_priority(
    svc: Services,
    state: list[CaseState] | None,
    assignee: str | None,
    after: int | None,
    limit: int,
) -> CasePage:
    states: list[CaseState | None] = list(dict.fromkeys(state)) if state else [None]
    found = {
        case.id: case
        for wanted in states
        for case in svc.store.cases.list(state=wanted, assignee=assignee, limit=PRIORITY_WINDOW)
    }
    ranked = by_priority(list(found.values()))
    # ``after``: the last case of the previous page, in the ranking as it is now (a case
    # no longer ranked, e.g. decided meanwhile: the first page again)
    start = next((i + 1 for i, (c, _) in enumerate(ranked) if c.id == after), 0)
    page = ranked[start : start + limit]
    more = len(ranked) > start + limit
    return CasePage(
        cases=[CaseOut.of(c, p.reason) for c, p in page],
        next=page[-1][0].id if more and page else None,
    )


@router.get("/{case_id}", response_model=CaseDetailOut, responses=problem_responses(404))
def show_case(case_id: CaseId, token: Reader, svc: Svc) -> CaseDetailOut:
    """One case: its state, matches (bank, algorithm, distance, entry id, category),
    sources, decision and history. Never the content's bytes, never a bank's entries."""
    _reader(svc, token)
    return _detail(svc, _load(svc, case_id))


@router.get("/{case_id}/statements", response_model=StatementList, responses=problem_responses(404))
def case_statements(case_id: CaseId, token: Reader, svc: Svc) -> StatementList:
    """The case's statements of reasons (DSA Art. 17), oldest first: the text the
    platform shows the uploader for each restriction, and whether it was filed in the
    Transparency Database. Empty when no decision restricted the content (or the host
    does not issue statements)."""
    _reader(svc, token)
    _load(svc, case_id)
    found = svc.store.statements.for_case(case_id)
    return StatementList(statements=[StatementOut.of(s) for s in found])


@router.post(
    "/{case_id}/decisions",
    response_model=CaseDetailOut,
    responses=problem_responses(404, 409),
)
def decide_case(case_id: CaseId, body: DecisionIn, token: Reviewer, svc: Svc) -> CaseDetailOut:
    """Confirm, mark as a false positive or escalate, as the token's person (403 when
    the token acts for no person or the person's role does not allow the step). 409:
    the case changed since ``version``, the step is not allowed from the case's state,
    or the same person confirms twice (a second confirmation comes from someone else).
    A false positive puts the content's hashes in the allow bank."""
    person = _person(svc, token)
    _permit(person, Permission.CASE_DECIDE, "decide cases")
    settings = svc.settings
    allow_bank = body.allow_bank or settings.review_allow_bank
    if allow_bank != settings.review_allow_bank:
        _permit(person, Permission.CASE_CONFIRM_FINAL, "name another allow bank than the server's")
    case = _load(svc, case_id)
    version = case.version if body.version is None else body.version
    # one who confirmed already (the two-person rule) or a case that is final is refused
    # below by the workflow: 409, whoever asks
    if (
        body.verdict is Verdict.CONFIRM
        and not case.state.final
        and person.name not in case.confirmers
        and confirms_finally(case, second_confirmation=settings.review_second_confirmation)
    ):
        _permit(
            person,
            Permission.CASE_CONFIRM_FINAL,
            "give the confirmation that makes a case confirmed (reportable)",
        )
    actor = f"token:{token.id}/as:{person.name}"
    try:
        decided = apply_verdict(
            svc.store,
            case_id,
            body.verdict,
            actor=actor,
            reason=body.reason,
            second_confirmation=settings.review_second_confirmation,
            allow_bank=allow_bank,
            endpoints=svc.endpoints,
            reference=from_settings(settings, svc.store, actor=actor),
            # what was checked above is what is decided on: a change meanwhile is a 409
            version=version,
        )
    except (review.ReviewError, review.StaleCase, review.UnknownCase) as exc:
        raise _refusal(exc) from None
    return _detail(svc, decided.case)


@router.post(
    "/{case_id}/assignee",
    response_model=CaseDetailOut,
    responses=problem_responses(404, 409),
)
def assign_case(case_id: CaseId, body: AssigneeIn, token: Reviewer, svc: Svc) -> CaseDetailOut:
    """Take a case (``assignee`` the token's person), give it back (null, one's own
    case), or, with ``case.assign``, give it to someone who reviews cases or unassign
    it. 409 when the assignee is not a person who may decide cases (unknown, disabled,
    or a role that does not decide), when the case is final, or when it changed since
    ``version``."""
    person = _person(svc, token)
    case = _load(svc, case_id)
    if body.assignee == person.name:
        _permit(person, Permission.CASE_DECIDE, "take cases")
    elif body.assignee is None and case.assignee == person.name:
        _permit(person, Permission.CASE_DECIDE, "give back cases")
    else:
        _permit(person, Permission.CASE_ASSIGN, "give cases to others or unassign them")
    if body.assignee is not None:
        assignee = svc.store.people.find_user(body.assignee)
        if assignee is None or not assignee.can(Permission.CASE_DECIDE):
            # well formed, but the people as they are now refuse it (as an allow bank
            # name that is a known bank does): a conflict, not an invalid request
            raise ProblemError(409, "Conflict", f"{body.assignee} is not someone who decides cases")
    try:
        changed = review.assign(
            svc.store,
            case_id,
            body.assignee,
            actor=f"token:{token.id}/as:{person.name}",
            reason=body.reason,
            version=case.version if body.version is None else body.version,
        )
    except (review.ReviewError, review.StaleCase, review.UnknownCase) as exc:
        raise _refusal(exc) from None
    return _detail(svc, changed)
