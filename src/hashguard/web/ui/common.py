"""What the review pages share: the services, cases and their evidence, reading forms,
and times written for people."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Path, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from hashguard.domain.cases import Case
from hashguard.domain.evidence import EvidenceItem
from hashguard.review import cases as review
from hashguard.store.evidence import UnknownEvidence
from hashguard.web.services import Services
from hashguard.web.ui.render import SECURITY_HEADERS
from hashguard.web.ui.session import UiError

#: the longest text a form field may carry (a reason, a name)
MAX_FIELD = 4000
CaseId = Annotated[int, Path(ge=1, le=2**62)]


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def utcnow() -> datetime:
    return datetime.now(UTC)


def field(form: FormData, name: str, default: str = "") -> str:
    """A text field of ``form`` (``default`` when absent); a file or an over-long value
    is refused."""
    value = form.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise UiError(400, "Bad request", f"{name} must be text")
    if len(value) > MAX_FIELD:
        raise UiError(400, "Bad request", f"{name} is longer than {MAX_FIELD} characters")
    return value


def int_field(form: FormData, name: str) -> int:
    text = field(form, name).strip()
    if not text.isdigit() or len(text) > 18:
        raise UiError(400, "Bad request", f"{name} must be a whole number")
    return int(text)


def age(then: datetime, now: datetime) -> str:
    """``then`` as a short age: ``45 s``, ``12 min``, ``5 h``, ``3 d``."""
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def when(at: datetime | None) -> str:
    """A timestamp for people, in UTC to the second."""
    return "" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# -- cases --------------------------------------------------------------------------


def load_case(svc: Services, case_id: int) -> Case:
    try:
        return svc.store.cases.get(case_id)
    except review.UnknownCase:
        raise UiError(404, "Not found", f"there is no case #{case_id}") from None


def evidence_of(svc: Services, case: Case) -> EvidenceItem | None:
    if case.evidence_id is None:
        return None
    try:
        return svc.store.evidence.get(case.evidence_id)
    except UnknownEvidence:
        return None


def kept_evidence(svc: Services, case: Case) -> str:
    """The id of the case's live evidence item, else a 404."""
    item = evidence_of(svc, case)
    if item is None or item.destroyed_at is not None:
        raise UiError(404, "Not found", f"no content of case #{case.id} is kept")
    return item.id


def back_to_case(case_id: int, **query: str) -> Response:
    target = f"/ui/cases/{case_id}"
    if query:
        target += "?" + urlencode(query)
    response = RedirectResponse(target, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response
