"""Shapes of ``GET /v1/stats``: the rows of a statistics table (aggregates only)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from hashguard.stats.aggregate import StatsTable
from hashguard.stats.figures import Proportion, Times


class ShareOut(BaseModel):
    """``hits / total`` with its 95% Wilson interval (``null`` when nothing was decided)."""

    hits: int
    total: int
    value: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, share: Proportion) -> ShareOut:
        return cls(
            hits=share.hits, total=share.total, value=share.value, low=share.low, high=share.high
        )


class TimesOut(BaseModel):
    """Measured times: the upper bound (seconds) of the histogram bucket the median and
    the 90th percentile fall in; ``null`` with a count > 0: beyond 180 days."""

    count: int
    median_le_seconds: float | None
    p90_le_seconds: float | None

    @classmethod
    def of(cls, times: Times) -> TimesOut:
        def finite(value: float | None) -> float | None:
            return None if value is None or value == float("inf") else value

        return cls(
            count=times.count,
            median_le_seconds=finite(times.median),
            p90_le_seconds=finite(times.p90),
        )


class StatsRowOut(BaseModel):
    key: dict[str, str] = Field(description="The group: one value per name of `by`.")
    counts: dict[str, int]
    shares: dict[str, ShareOut]
    times: dict[str, TimesOut]


class StatsOut(BaseModel):
    since: date
    until: date
    by: list[str]
    rows: list[StatsRowOut]

    @classmethod
    def of(cls, table: StatsTable) -> StatsOut:
        return cls(
            since=table.since,
            until=table.until,
            by=list(table.by),
            rows=[
                StatsRowOut(
                    key=dict(zip(table.by, row.key, strict=True)),
                    counts=dict(row.counts),
                    shares={name: ShareOut.of(s) for name, s in row.shares.items()},
                    times={str(t): TimesOut.of(v) for t, v in row.times.items()},
                )
                for row in table.rows
            ],
        )
