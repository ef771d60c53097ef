"""Calendar grains (day, week, month, quarter, year) and the period each day falls in."""

from __future__ import annotations

from datetime import date
from enum import StrEnum


class Grain(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


def period_of(day: date, grain: Grain) -> str:
    """The name of the period of ``grain`` that ``day`` falls in: ``2026-05-04``,
    ``2026-W19`` (ISO week), ``2026-05``, ``2026-Q2``, ``2026``. Names sort in time order."""
    if grain is Grain.DAY:
        return day.isoformat()
    if grain is Grain.WEEK:
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if grain is Grain.MONTH:
        return f"{day.year}-{day.month:02d}"
    if grain is Grain.QUARTER:
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return str(day.year)
