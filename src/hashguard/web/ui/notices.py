"""The notices queue in the review UI (``/ui/notices``) and a notice's page: who sent it
(configured trusted flaggers and hotlines marked, first as the intake orders them), its
reference, when it was received, its state, its items and their cases, and its time to
decision (received → decided, or its age while undecided; ``notices.progress``).

The public form that receives notices is ``notice``. Nothing here shows content: an
item links to its case, whose page shows the blurred derivative. The notifier's e-mail
address is not shown (whether one was given is); the notice's own URLs are.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from hashguard.domain.cases import Case, CaseEvent
from hashguard.domain.notices import Notice, NoticeState
from hashguard.domain.people import Permission
from hashguard.notices.progress import NoticeProgress, Outcome, progress
from hashguard.review import cases as review
from hashguard.store.notices import UnknownNotice
from hashguard.web.services import Services
from hashguard.web.ui.common import services, utcnow, when
from hashguard.web.ui.errors import UiRoute
from hashguard.web.ui.notice import LABELS
from hashguard.web.ui.render import page
from hashguard.web.ui.session import SignedIn, UiError, require

router = APIRouter(route_class=UiRoute)

Viewer = Annotated[SignedIn, Depends(require(Permission.QUEUE_VIEW))]
NoticeId = Annotated[int, Path(ge=1, le=2**62)]

#: notices read (in queue order) and shown at most
READ = 1000
SHOWN = 200
#: the filters besides each notice state: undecided (the default), decided, all
FILTERS = ("undecided", "decided", "all")
OUTCOME_TEXT = {
    Outcome.OPEN: "not resolved yet",
    Outcome.IN_REVIEW: "in review",
    Outcome.RESTRICTED: "restricted",
    Outcome.NOT_RESTRICTED: "not restricted",
    Outcome.NOT_FOUND: "not on the platform",
}


def duration(elapsed: timedelta) -> str:
    """``elapsed`` for people: ``45 s``, ``12 min``, ``5 h 3 min``, ``3 d 4 h``."""
    seconds = max(0, int(elapsed.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def _cases(svc: Services, notice: Notice) -> dict[int, tuple[Case, list[CaseEvent]] | None]:
    found: dict[int, tuple[Case, list[CaseEvent]] | None] = {}
    for case_id in notice.case_ids:
        try:
            found[case_id] = (svc.store.cases.get(case_id), svc.store.cases.history(case_id))
        except review.UnknownCase:
            found[case_id] = None
    return found


def _progress(svc: Services, notice: Notice, now: datetime) -> NoticeProgress:
    return progress(notice, _cases(svc, notice), now=now)


def _wanted(state: str) -> str:
    if state == "":
        return "undecided"
    if state in FILTERS or state in {str(s) for s in NoticeState}:
        return state
    raise UiError(400, "Bad request", f"there is no notice state {state!r}")


def _keep(row: NoticeProgress, wanted: str) -> bool:
    if wanted == "all":
        return True
    if wanted == "undecided":
        return not row.decided
    if wanted == "decided":
        return row.decided
    return str(row.notice.state) == wanted


def _listed(svc: Services, wanted: str) -> tuple[list[NoticeProgress], dict[str, int], int]:
    """The notices ``wanted`` picks in queue order (at most ``SHOWN``), how many there
    are in each filter, and how many ``wanted`` picks in all."""
    now = utcnow()
    rows = [_progress(svc, n, now) for n in svc.store.notices.list(limit=READ)]
    counts = {name: sum(_keep(r, name) for r in rows) for name in FILTERS}
    counts.update({str(s): sum(r.notice.state is s for r in rows) for s in NoticeState})
    kept = [r for r in rows if _keep(r, wanted)]
    return kept[:SHOWN], counts, len(kept)


@router.get("/notices")
async def notices_page(
    request: Request, who: Viewer, state: Annotated[str, Query(max_length=32)] = ""
) -> Response:
    """Notices in queue order (configured notifiers first, then oldest first);
    ``state``: ``undecided`` (the default), ``decided``, ``all`` or a notice state."""
    wanted = _wanted(state)
    rows, counts, total = await run_in_threadpool(_listed, services(request), wanted)
    return page(
        request,
        "notices.html",
        {
            "rows": rows,
            "counts": counts,
            "total": total,
            "shown": SHOWN,
            "state": wanted,
            "filters": FILTERS,
            "states": [str(s) for s in NoticeState],
            "outcomes": OUTCOME_TEXT,
            "labels": {str(k): v for k, v in LABELS.items()},
            "duration": duration,
            "when": when,
        },
    )


def _one(svc: Services, notice_id: int) -> NoticeProgress:
    try:
        notice = svc.store.notices.get(notice_id)
    except UnknownNotice:
        raise UiError(404, "Not found", f"there is no notice #{notice_id}") from None
    return _progress(svc, notice, utcnow())


@router.get("/notices/{notice_id}")
async def notice_page(request: Request, notice_id: NoticeId, who: Viewer) -> Response:
    row = await run_in_threadpool(_one, services(request), notice_id)
    return page(
        request,
        "notice_detail.html",
        {
            "row": row,
            "n": row.notice,
            "decisions": {d.case_id: d for d in row.cases},
            "outcomes": OUTCOME_TEXT,
            "labels": {str(k): v for k, v in LABELS.items()},
            "duration": duration,
            "when": when,
        },
    )
