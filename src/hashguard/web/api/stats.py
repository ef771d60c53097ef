"""/v1/stats: the aggregate statistics (``stats`` scope; people: lead, admin, auditor).
Counts of the daily rollups only: never a case, a person or content."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from hashguard.domain.tokens import Scope, Token
from hashguard.stats.aggregate import (
    BadGrouping,
    aggregate,
    figure_names,
    grouping_names,
    name_pattern,
)
from hashguard.web.deps import require, services
from hashguard.web.problems import ProblemError, problem_responses
from hashguard.web.schemas.stats import StatsOut
from hashguard.web.services import Services

router = APIRouter(prefix="/v1/stats", tags=["stats"])

Reader = Annotated[Token, Depends(require(Scope.STATS))]
Svc = Annotated[Services, Depends(services)]


def _day(description: str) -> Any:
    """A calendar day, YYYY-MM-DD only (pydantic's lax date would take "0" as 1970)."""
    return Query(
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        json_schema_extra={"format": "date"},
        description=description,
    )


def _parse(text: str | None, name: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ProblemError(422, "Invalid request", f"{name} is not a day: {text!r}") from None


@router.get("", response_model=StatsOut, responses=problem_responses(422, 503))
async def stats(
    _: Reader,
    svc: Svc,
    since: Annotated[str | None, _day("First day (default: 1 January).")] = None,
    until: Annotated[str | None, _day("Last day (default: today, UTC).")] = None,
    by: Annotated[
        str | None,
        Query(
            max_length=400,
            pattern=name_pattern(grouping_names()),
            description="day|week|month|quarter|year and/or label keys (bank, source, "
            "algorithm, band, way, kind, service, notifier_kind…), comma-separated.",
        ),
    ] = None,
    metrics: Annotated[
        str | None,
        Query(
            max_length=2000,
            pattern=name_pattern(figure_names()),
            description="Only these figures, metrics or timings, comma-separated.",
        ),
    ] = None,
) -> StatsOut:
    """The figures of the days ``since``..``until`` grouped ``by`` (as ``hashguard stats``
    shows them): counts, the not-checked share and the accuracy of lists and bands with
    their 95% interval, and times (the histogram bucket's upper bound)."""
    reader = svc.stats
    if reader is None:
        raise ProblemError(503, "Not ready", "this store keeps no statistics rollups")
    today = datetime.now(UTC).date()
    first = _parse(since, "since") or date(today.year, 1, 1)
    last = _parse(until, "until") or today
    figures = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    try:
        table = await run_in_threadpool(
            aggregate, reader, first, last, by=(by or "").split(","), figures=figures
        )
    except BadGrouping as exc:
        raise ProblemError(422, "Invalid request", str(exc)) from None
    return StatsOut.of(table)
