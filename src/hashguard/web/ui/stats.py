"""/ui/stats: the numbers for leads, admins and auditors: trends per month, matches per
list, accuracy per list and band with its interval, the not-checked share and the times,
drawn as server-side SVG; the same table as ``GET /v1/stats`` to download as CSV."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from hashguard.domain.people import Permission
from hashguard.domain.stats import StatsReader
from hashguard.stats.aggregate import BadGrouping, StatsTable, aggregate
from hashguard.stats.formats import duration, table_csv
from hashguard.web.ui.charts import Interval, column_chart, interval_chart
from hashguard.web.ui.common import services, utcnow
from hashguard.web.ui.errors import UiRoute
from hashguard.web.ui.render import SECURITY_HEADERS, page
from hashguard.web.ui.session import SignedIn, UiError, require

router = APIRouter(route_class=UiRoute)

Viewer = Annotated[SignedIn, Depends(require(Permission.STATS_VIEW))]
Day = Annotated[date | None, Query()]


def _span(since: date | None, until: date | None) -> tuple[date, date]:
    """The span asked for; by default the last twelve months, this one included."""
    last = until or utcnow().date()
    month, year = last.month - 11, last.year
    if month < 1:
        month, year = month + 12, year - 1
    first = since or date(year, month, 1)
    if first > last:
        raise UiError(400, "Bad dates", "the first day is after the last")
    return first, last


def _tables(reader: StatsReader, first: date, last: date) -> dict[str, StatsTable]:
    try:
        return {
            "months": aggregate(reader, first, last, by=["month"]),
            "lists": aggregate(reader, first, last, by=["bank", "band"]),
            "sources": aggregate(reader, first, last, by=["source"], figures=["matches"]),
        }
    except BadGrouping as exc:
        raise UiError(400, "Bad span", str(exc)) from None


def _context(tables: dict[str, StatsTable]) -> dict[str, Any]:
    months = tables["months"]
    labels = [row.key[0] for row in months.rows]
    accuracy = [
        Interval(
            label=f"{row.key[0]} {row.key[1]}".strip(),
            value=share.value,
            low=share.low,
            high=share.high,
            n=share.total,
        )
        for row in tables["lists"].rows
        if (share := row.shares["accuracy"]).value is not None
        and share.low is not None
        and share.high is not None
    ]
    return {
        "charts": {
            "checked": column_chart(
                labels, [r.counts["checked"] for r in months.rows], name="files checked"
            ),
            "matches": column_chart(
                labels, [r.counts["matches"] for r in months.rows], name="matches"
            ),
            "not_checked": column_chart(
                labels,
                [r.shares["not_checked_share"].value or 0.0 for r in months.rows],
                name="not-checked share",
                unit="%",
            ),
            "sources": column_chart(
                [r.key[0] or "-" for r in tables["sources"].rows],
                [r.counts["matches"] for r in tables["sources"].rows],
                name="matches per list source",
            ),
            "accuracy": interval_chart(accuracy, name="accuracy per list and band"),
        },
        "months": months,
        "lists": tables["lists"],
        "duration": duration,
    }


@router.get("/stats")
async def stats_page(request: Request, _: Viewer, since: Day = None, until: Day = None) -> Response:
    first, last = _span(since, until)
    reader = services(request).stats
    if reader is None:
        return page(request, "stats.html", {"since": first, "until": last, "unavailable": True})
    tables = await run_in_threadpool(_tables, reader, first, last)
    return page(
        request,
        "stats.html",
        {"since": first, "until": last, "unavailable": False, **_context(tables)},
    )


@router.get("/stats.csv")
async def stats_csv(
    request: Request,
    _: Viewer,
    since: Day = None,
    until: Day = None,
    by: Annotated[str, Query(max_length=200)] = "month",
) -> Response:
    first, last = _span(since, until)
    reader = services(request).stats
    if reader is None:
        raise UiError(404, "No statistics", "this store keeps no statistics rollups")
    try:
        table = await run_in_threadpool(aggregate, reader, first, last, by=by.split(","))
    except BadGrouping as exc:
        raise UiError(400, "Bad grouping", str(exc)) from None
    return Response(
        table_csv(table),
        media_type="text/csv; charset=utf-8",
        headers={
            **SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="hashguard-stats-{first}-{last}.csv"',
        },
    )
