"""Derived figures: proportions with a Wilson score interval, and quantiles of the daily
timing histograms (reported as the upper bound of the bucket they fall in)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from hashguard.domain.stats import TIMING_BOUNDS

#: the normal quantile of a two-sided 95% interval
Z95 = 1.959963984540054


@dataclass(frozen=True, kw_only=True, slots=True)
class Proportion:
    """``hits`` of ``total`` with its Wilson score interval (95%); ``None`` of no total."""

    hits: int
    total: int
    value: float | None
    low: float | None
    high: float | None


def proportion(hits: int, total: int, *, z: float = Z95) -> Proportion:
    """``hits / total`` and its Wilson interval, which stays inside [0, 1] and behaves
    for small counts and for 0% and 100% (where the normal approximation collapses)."""
    if total <= 0:
        return Proportion(hits=hits, total=total, value=None, low=None, high=None)
    p = hits / total
    z2 = z * z
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / (1 + z2 / total)
    return Proportion(
        hits=hits,
        total=total,
        value=p,
        low=max(0.0, centre - half),
        high=min(1.0, centre + half),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Times:
    """How many times were measured, and the bucket upper bounds (seconds) their median
    and 90th percentile fall in. ``math.inf``: beyond the last finite bound (180 days);
    ``None``: nothing measured."""

    count: int
    median: float | None
    p90: float | None


def quantile_bound(histogram: Mapping[int, int], q: float) -> float | None:
    """The upper bound of the bucket holding the ``q`` quantile (nearest rank: the
    smallest bucket whose cumulative count reaches ``ceil(q * n)``)."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return TIMING_BOUNDS[min(bucket, len(TIMING_BOUNDS) - 1)]
    return TIMING_BOUNDS[-1]  # pragma: no cover (the loop reaches the total)


def times_of(histogram: Mapping[int, int]) -> Times:
    return Times(
        count=sum(histogram.values()),
        median=quantile_bound(histogram, 0.5),
        p90=quantile_bound(histogram, 0.9),
    )
