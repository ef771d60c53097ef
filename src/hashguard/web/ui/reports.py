"""Reports in the review UI: a case's report on its page (state, NCMEC report id, files,
every step with its response code), submitting, retracting or sending a failed one
again (a lead), and ``/ui/reports`` listing reports by state, the dead letters
(``failed``) among them.

Submitting runs ``Reporting.submit`` inside the request (in the thread pool), not in a
background job: a case's report has one file, i.e. four calls (submit, upload, file
details, finish), about two seconds at NCMEC's two requests a second, and the lead sees
the outcome (the report id, or why not) on the page the button leads to. What the
request cannot finish (NCMEC answering "retry later", a process killed mid-way) stays
in the report's persisted state machine for ``hashguard reports resume`` or the
background job; a report another process is working on is left to it (the page says
so), never sent twice. Every step is audited by the report machine under the lead's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from hashguard.domain.appeals import AppealState
from hashguard.domain.cases import Case, CaseState
from hashguard.domain.people import Permission
from hashguard.domain.reports import Report, ReportState, ReportStep
from hashguard.evidence import EvidenceError
from hashguard.keys import MasterKeyError
from hashguard.plugins import PluginError
from hashguard.reports.base import InvalidReport
from hashguard.reports.machine import ReportBusy, RetractRefused, RetryRefused
from hashguard.reports.service import SINK, Reporting, ReportRefused
from hashguard.review import cases as review
from hashguard.store.reports import UnknownReport
from hashguard.web.services import Services
from hashguard.web.ui.common import CaseId, back_to_case, load_case, services, utcnow, when
from hashguard.web.ui.errors import UiRoute
from hashguard.web.ui.render import page
from hashguard.web.ui.session import SignedIn, UiError, require

router = APIRouter(route_class=UiRoute)

Reader = Annotated[SignedIn, Depends(require(Permission.REPORTS_VIEW))]
Submitter = Annotated[SignedIn, Depends(require(Permission.REPORTS_SUBMIT))]
ReportId = Annotated[int, Path(ge=1, le=2**62)]

#: the answers of ``?reported=`` on the case page: fixed texts, never the query's own
FLASHES = {
    "submitted": "The report was sent as far as it goes now: see its state below.",
    "retracted": "The report was retracted.",
    "retried": "The failed report was sent again as far as it goes now: see its state below.",
    "busy": "Another process is sending this report right now: reload in a moment.",
}
#: reports shown on /ui/reports at most, newest first
SHOWN = 500
#: the longest error text shown (a schema's complaint can be long)
MAX_DETAIL = 600


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseReport:
    """What the case page's report section shows (``_case_report.html``)."""

    report: Report | None
    steps: list[ReportStep]
    #: the viewer may see the report's details (``reports.view``); others see its state
    details: bool
    can_submit: bool
    #: the button resumes a report already started rather than sending a new one
    resume: bool
    can_retract: bool
    #: a failed report of a case still confirmed: the button sends it again
    can_retry: bool
    #: a report waiting for its next attempt (NCMEC answered "retry later")
    waiting_until: datetime | None
    flash: str | None
    #: the reversed appeal (Art. 20 DSA) that lifted the case's decision, if any: the
    #: report is of content no longer found to be CSAM
    reversed_on_appeal: int | None = None


def _resumable(report: Report, now: datetime) -> bool:
    due = report.next_attempt_at
    return not report.state.final and (due is None or due <= now)


def case_report(svc: Services, who: SignedIn, case: Case, reported: str = "") -> CaseReport:
    """The case's report section for ``who`` (called in the thread pool)."""
    report = svc.store.reports.find(case.id, SINK)
    details = who.can(Permission.REPORTS_VIEW)
    lead = who.can(Permission.REPORTS_SUBMIT)
    now = utcnow()
    waiting = (
        report.next_attempt_at
        if report is not None and not report.state.final and not _resumable(report, now)
        else None
    )
    return CaseReport(
        report=report,
        steps=svc.store.reports.steps(report.id) if report is not None and details else [],
        details=details,
        can_submit=lead
        and case.state is CaseState.CONFIRMED
        and (report is None or _resumable(report, now)),
        resume=report is not None,
        can_retract=lead and report is not None and not report.state.final,
        can_retry=lead
        and report is not None
        and report.state is ReportState.FAILED
        and case.state is CaseState.CONFIRMED,
        waiting_until=waiting,
        flash=FLASHES.get(reported),
        reversed_on_appeal=_reversal(svc, case.id),
    )


def _reversal(svc: Services, case_id: int) -> int | None:
    """The id of the appeal that reversed the case's decision (None: none did)."""
    return next(
        (a.id for a in svc.store.appeals.for_case(case_id) if a.state is AppealState.REVERSED),
        None,
    )


def _detail(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def _reporting(svc: Services) -> Reporting:
    try:
        return Reporting.open(svc.settings, svc.store, svc.registry, svc.master_key, clock=utcnow)
    except (PluginError, MasterKeyError) as exc:  # their messages name no secret
        raise UiError(
            503,
            "Reporting is not configured",
            f"{_detail(exc)} — an administrator sets it up with `hashguard reports settings`",
        ) from None


def _submit(svc: Services, who: SignedIn, case_id: int) -> str:
    """The case page's flash: ``submitted``, or ``busy`` when another process (the
    background job resuming due reports, another lead) holds the report: it is being
    sent, once."""
    load_case(svc, case_id)
    with _reporting(svc) as reporting:
        try:
            reporting.submit(case_id, actor=who.user.actor)
        except ReportBusy:
            return "busy"
        except ReportRefused as exc:
            raise UiError(409, "Not reported", _detail(exc)) from None
        except InvalidReport as exc:
            raise UiError(409, "The report is not valid", _detail(exc)) from None
        except EvidenceError as exc:
            raise UiError(409, "The evidence cannot be read", _detail(exc)) from None
        except review.UnknownCase:
            raise UiError(404, "Not found", f"there is no case #{case_id}") from None
    return "submitted"


@router.post("/cases/{case_id}/report")
async def submit(request: Request, case_id: CaseId, who: Submitter) -> Response:
    """Draft the case's report if it has none and send it as far as it goes now (or
    resume one started); back to the case page, which shows the outcome."""
    outcome = await run_in_threadpool(_submit, services(request), who, case_id)
    return back_to_case(case_id, reported=outcome)


def _known(svc: Services, report_id: int) -> None:
    try:
        svc.store.reports.get(report_id)
    except UnknownReport:
        raise UiError(404, "Not found", f"there is no report #{report_id}") from None


def _retract(svc: Services, who: SignedIn, report_id: int) -> Report:
    _known(svc, report_id)
    with _reporting(svc) as reporting:
        try:
            return reporting.retract(report_id, actor=who.user.actor)
        except (RetractRefused, ReportBusy) as exc:
            raise UiError(409, "Not retracted", _detail(exc)) from None


@router.post("/reports/{report_id}/retract")
async def retract(request: Request, report_id: ReportId, who: Submitter) -> Response:
    """Cancel a report that is not finished (at NCMEC too, if it was sent)."""
    report = await run_in_threadpool(_retract, services(request), who, report_id)
    return back_to_case(report.case_id, reported="retracted")


def _retry(svc: Services, who: SignedIn, report_id: int) -> Report:
    _known(svc, report_id)
    with _reporting(svc) as reporting:
        try:
            return reporting.retry(report_id, actor=who.user.actor)
        except (RetryRefused, ReportBusy, ReportRefused) as exc:
            raise UiError(409, "Not sent again", _detail(exc)) from None
        except EvidenceError as exc:
            raise UiError(409, "The evidence cannot be read", _detail(exc)) from None


@router.post("/reports/{report_id}/retry")
async def retry(request: Request, report_id: ReportId, who: Submitter) -> Response:
    """Send a failed report again (``Reporting.retry``) as far as it goes now; back to
    the case page, which shows the outcome."""
    report = await run_in_threadpool(_retry, services(request), who, report_id)
    return back_to_case(report.case_id, reported="retried")


# -- the list -----------------------------------------------------------------------------


def _state(state: str) -> ReportState | None:
    if state in ("", "all"):
        return None
    try:
        return ReportState(state)
    except ValueError:
        raise UiError(400, "Bad request", f"there is no report state {state!r}") from None


def _listed(
    svc: Services, state: ReportState | None
) -> tuple[list[Report], dict[str, int], dict[int, int]]:
    everything = svc.store.reports.list()
    # case id -> the appeal that reversed its decision
    reversed_ = {
        a.case_id: a.id
        for a in svc.store.appeals.list(states=[AppealState.REVERSED], limit=100_000)
    }
    counts = {str(s): 0 for s in ReportState}
    for report in everything:
        counts[str(report.state)] += 1
    shown = [r for r in everything if state is None or r.state is state]
    shown.sort(key=lambda r: r.id, reverse=True)
    return shown[:SHOWN], counts, reversed_


@router.get("/reports")
async def reports_page(
    request: Request, who: Reader, state: Annotated[str, Query(max_length=32)] = ""
) -> Response:
    """Reports newest first; ``state`` one state (``failed``: the dead letters)."""
    wanted = _state(state)
    shown, counts, reversed_ = await run_in_threadpool(_listed, services(request), wanted)
    return page(
        request,
        "reports.html",
        {
            "reports": shown,
            "counts": counts,
            "reversed": reversed_,
            "state": str(wanted) if wanted is not None else "",
            "states": [str(s) for s in ReportState],
            "shown": SHOWN,
            "when": when,
        },
    )
