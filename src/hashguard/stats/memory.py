"""A ``StatsReader`` over rows held in memory (a copy of rollups, a test workload)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import date

from hashguard.domain.stats import CountRow, Metric, TimingRow


class MemoryStatsReader:
    """Reads the rows it was given, as the store's reader reads its rollup tables."""

    def __init__(self, counts: Iterable[CountRow] = (), timings: Iterable[TimingRow] = ()) -> None:
        self._counts = tuple(counts)
        self._timings = tuple(timings)

    def counts(
        self, since: date, until: date, metrics: Collection[Metric] | None = None
    ) -> Sequence[CountRow]:
        wanted = None if metrics is None else frozenset(metrics)
        return [
            row
            for row in self._counts
            if since <= row.day <= until and (wanted is None or row.metric in wanted)
        ]

    def timings(self, since: date, until: date) -> Sequence[TimingRow]:
        return [row for row in self._timings if since <= row.day <= until]
