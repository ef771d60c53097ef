"""Pages that look after the operation and the team: dead letters (and their retry),
reviewers' exposure (and a lead's grant of reveals beyond the limit), and the audit log
with its chain's verification."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from hashguard.audit import verify
from hashguard.domain.audit import AuditEvent, AuditHead, VerifyReport
from hashguard.domain.exposure import RevealGrant
from hashguard.domain.people import Permission
from hashguard.review.exposure import MAX_GRANT, BreakRule, RevealLimit, grant
from hashguard.store.actions import NotDead, UnknownAction
from hashguard.store.audit import AuditHeadMissing
from hashguard.web.services import Services
from hashguard.web.ui.common import field, int_field, services, utcnow, when
from hashguard.web.ui.errors import UiRoute
from hashguard.web.ui.render import SECURITY_HEADERS, page
from hashguard.web.ui.session import SignedIn, UiError, require

router = APIRouter(route_class=UiRoute)

Operator = Annotated[SignedIn, Depends(require(Permission.ACTIONS_MANAGE))]
Carer = Annotated[SignedIn, Depends(require(Permission.EXPOSURE_VIEW))]
Granter = Annotated[SignedIn, Depends(require(Permission.EXPOSURE_GRANT))]
Auditor = Annotated[SignedIn, Depends(require(Permission.AUDIT_READ))]

#: audit entries per page
AUDIT_PAGE = 50
DEAD_LETTERS_SHOWN = 500
FLASHES = {"retried": "The action is pending again: the dispatcher will deliver it."}


# -- dead letters ---------------------------------------------------------------------


@router.get("/dead-letters")
async def dead_letters(
    request: Request, who: Operator, done: Annotated[str, Query(max_length=32)] = ""
) -> Response:
    svc = services(request)
    actions = await run_in_threadpool(svc.store.actions.dead_letters, DEAD_LETTERS_SHOWN)
    return page(
        request,
        "dead_letters.html",
        {"actions": actions, "when": when, "flash": FLASHES.get(done), "shown": DEAD_LETTERS_SHOWN},
    )


def _retry(svc: Services, who: SignedIn, action_id: int) -> None:
    try:
        svc.store.actions.retry(action_id, actor=who.user.actor)  # audited: action.retried
    except UnknownAction:
        raise UiError(404, "Not found", f"there is no action #{action_id}") from None
    except NotDead:
        raise UiError(409, "Refused", f"action #{action_id} is not a dead letter") from None


@router.post("/dead-letters/{action_id}/retry")
async def retry_dead_letter(
    request: Request, action_id: Annotated[int, Path(ge=1, le=2**62)], who: Operator
) -> Response:
    await run_in_threadpool(_retry, services(request), who, action_id)
    response = RedirectResponse("/ui/dead-letters?done=retried", status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


# -- exposure -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ExposureRow:
    name: str
    window: int
    today: int
    week: int
    #: reveals in the limit's window, and how many are allowed now (limit + grants)
    limit_window: int
    allowed: int
    #: when the limit refuses reveals: from when they are possible again
    refused_until: datetime | None
    grants: tuple[RevealGrant, ...]


def _exposure(svc: Services, now: datetime) -> list[ExposureRow]:
    people = svc.store.people
    rule = BreakRule.of(svc.settings)
    limit = RevealLimit.of(svc.settings)
    midnight = datetime.combine(now.date(), time(), tzinfo=now.tzinfo)
    window = people.exposure(rule.since(now))
    today = people.exposure(midnight)
    week = people.exposure(now - timedelta(days=7))
    names = {user.id: user.name for user in people.list_users()}
    times = {names[i]: t for i, t in svc.store.exposure.reveal_times(limit.since(now)).items()}
    grants: dict[str, list[RevealGrant]] = {}
    for found in svc.store.exposure.active_grants(now):
        grants.setdefault(names[found.user_id], []).append(found)
    rows = []
    for name in sorted(set(week) | set(grants), key=lambda n: (-week.get(n, 0), n)):
        mine = grants.get(name, [])
        refused = limit.refusal(times.get(name, []), mine, now)
        rows.append(
            ExposureRow(
                name=name,
                window=window.get(name, 0),
                today=today.get(name, 0),
                week=week.get(name, 0),
                limit_window=limit.in_window(times.get(name, []), now),
                allowed=limit.allowed(mine, now),
                refused_until=refused.until if refused else None,
                grants=tuple(mine),
            )
        )
    return rows


GRANT_FLASHES = {"granted": "The reveals were granted (and recorded in the audit log)."}


@router.get("/exposure")
async def exposure(
    request: Request, who: Carer, done: Annotated[str, Query(max_length=32)] = ""
) -> Response:
    svc = services(request)
    rows = await run_in_threadpool(_exposure, svc, utcnow())
    return page(
        request,
        "exposure.html",
        {
            "rows": rows,
            "rule": BreakRule.of(svc.settings),
            "limit": RevealLimit.of(svc.settings),
            "when": when,
            "may_grant": who.user.can(Permission.EXPOSURE_GRANT),
            "max_grant": MAX_GRANT,
            "flash": GRANT_FLASHES.get(done),
        },
    )


def _grant(svc: Services, who: SignedIn, name: str, extra: int, reason: str) -> None:
    person = svc.store.people.find_user(name)
    if person is None:
        raise UiError(404, "Not found", f"there is no person {name!r}")
    if person.id == who.user.id:
        raise UiError(403, "Refused", "another lead grants your own reveals")
    try:
        grant(
            svc.store.exposure,
            user_id=person.id,
            extra=extra,
            reason=reason,
            actor=who.user.actor,  # audited: review.reveals_granted
            now=utcnow(),
            limit=RevealLimit.of(svc.settings),
        )
    except ValueError as exc:
        raise UiError(400, "Bad request", str(exc)) from None


@router.post("/exposure/grant")
async def grant_reveals(request: Request, who: Granter) -> Response:
    """A lead gives a reviewer extra reveals beyond the exposure limit, with a reason,
    for one limit window."""
    form = await request.form()
    name = field(form, "name").strip()
    extra = int_field(form, "extra")
    reason = field(form, "reason")
    await run_in_threadpool(_grant, services(request), who, name, extra, reason)
    response = RedirectResponse("/ui/exposure?done=granted", status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


# -- the audit log --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditPage:
    events: list[AuditEvent]
    head_seq: int
    older: int | None
    newer: int | None
    report: VerifyReport | None
    problem: str | None


def _audit(svc: Services, before: int | None) -> AuditPage:
    log = svc.store.audit
    head: AuditHead | None = None
    problem: str | None = None
    try:
        head = log.head()
    except AuditHeadMissing as exc:
        problem = str(exc)
    # every entry is checked on each visit: the page says whether the chain holds
    report = verify(log.events(), recorded_head=head)
    last = report.head.seq if head is None else max(head.seq, report.head.seq)
    end = min(before, last + 1) if before is not None else last + 1
    start = max(0, end - 1 - AUDIT_PAGE)
    shown = [e for e in itertools.islice(log.events(after_seq=start), AUDIT_PAGE) if e.seq < end]
    shown.reverse()
    oldest = shown[-1].seq if shown else end
    return AuditPage(
        events=shown,
        head_seq=last,
        older=oldest if oldest > 1 else None,
        # 0: the latest page
        newer=None if end > last else (end + AUDIT_PAGE if end + AUDIT_PAGE <= last else 0),
        report=report,
        problem=problem,
    )


@router.get("/audit")
async def audit_log(
    request: Request,
    who: Auditor,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    found = await run_in_threadpool(_audit, services(request), before)
    return page(
        request,
        "audit.html",
        {
            "log": found,
            "when": when,
            "details": lambda e: json.dumps(dict(e.details), sort_keys=True, ensure_ascii=False),
        },
    )
