"""Where the views read the numbers: the store's rollups (``store.stats``)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import date
from typing import cast

from hashguard.domain.stats import CountRow, Metric, StatsReader, TimingRow

Monthly = Callable[
    [date, date, Collection[Metric] | None], tuple[Sequence[CountRow], Sequence[TimingRow]]
]


class StatsUnavailable(RuntimeError):
    """This store records no statistics (a store of a version without rollups)."""


def reader_of(store: object) -> StatsReader:
    """The store's ``StatsReader``. Read through ``getattr`` so the views do not depend on
    the store's layout beyond the ``StatsReader`` protocol."""
    found = getattr(store, "stats", None)
    if found is None or not callable(getattr(found, "counts", None)):
        raise StatsUnavailable("this store keeps no statistics rollups")
    return cast(StatsReader, found)


class _ByMonth:
    """A ``StatsReader`` over a store's monthly rollups: each row dated the first of its
    month (a year is a few thousand rows, whatever the traffic)."""

    def __init__(self, monthly: Monthly) -> None:
        self._monthly = monthly

    def counts(
        self, since: date, until: date, metrics: Collection[Metric] | None = None
    ) -> Sequence[CountRow]:
        return self._monthly(since, until, metrics)[0]

    def timings(self, since: date, until: date) -> Sequence[TimingRow]:
        return self._monthly(since, until, ())[1]


def by_month(reader: StatsReader) -> StatsReader:
    """``reader`` for a view that sums whole months or more: the store's monthly rollups
    where it keeps them (same sums, far fewer rows), else ``reader`` itself."""
    monthly = getattr(reader, "monthly", None)
    return _ByMonth(cast(Monthly, monthly)) if callable(monthly) else reader
