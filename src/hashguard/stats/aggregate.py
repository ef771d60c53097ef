"""Aggregation: the daily rollups of a ``StatsReader`` summed per period and per label,
with the derived figures (not-checked share, accuracy, times) of each group.

A table groups by calendar grains (``month``...) and label keys (``bank``...). Grouped
by a label, a table shows only the figures of metrics that carry that label (matches
have a bank, notices do not), and the times only when it groups by grains alone (times
carry no labels).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from hashguard.domain.stats import LABELS, Metric, StatsReader, Timing
from hashguard.stats.catalogue import (
    COUNT_BY_NAME,
    COUNTS,
    HIDDEN_TOTALS,
    LABEL_KEYS,
    SHARES,
    TIMINGS,
    Count,
    Share,
    share_inputs,
)
from hashguard.stats.figures import Proportion, Times, proportion, times_of
from hashguard.stats.periods import Grain, period_of
from hashguard.stats.source import by_month

#: the longest span whose empty periods are filled in (a decade); a longer span shows
#: only the periods that have data
MAX_DAYS = 3660


class BadGrouping(ValueError):
    """A ``by`` or ``metrics`` name that is neither a grain, a label nor a figure."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StatsRow:
    """One group: its key (one value per ``by`` name) and its figures."""

    key: tuple[str, ...]
    counts: Mapping[str, int]
    shares: Mapping[str, Proportion]
    times: Mapping[Timing, Times]


@dataclass(frozen=True, kw_only=True, slots=True)
class StatsTable:
    since: date
    until: date
    by: tuple[str, ...]
    counts: tuple[str, ...]
    shares: tuple[str, ...]
    times: tuple[Timing, ...]
    rows: tuple[StatsRow, ...]


def parse_by(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"month,bank"`` (or a list of names) as a checked grouping."""
    if text is None:
        return ()
    parts = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(p.strip() for p in parts if p.strip())
    for name in names:
        if name not in Grain.__members__.values() and name not in LABEL_KEYS:
            known = ", ".join([*(str(g) for g in Grain), *sorted(LABEL_KEYS)])
            raise BadGrouping(f"cannot group by {name!r}; one of: {known}")
    return tuple(dict.fromkeys(names))  # a name given twice groups once


def name_pattern(names: Collection[str]) -> str:
    """A regular expression of comma-separated ``names`` (for the API's document)."""
    alternatives = "|".join(sorted(names, key=lambda n: (-len(n), n)))
    return f"^(?:{alternatives})(?:,(?:{alternatives}))*$"


def grouping_names() -> frozenset[str]:
    return frozenset({*(str(g) for g in Grain), *LABEL_KEYS})


def figure_names() -> frozenset[str]:
    return frozenset(
        {c.name for c in COUNTS}
        | {s.name for s in SHARES}
        | {str(m) for m in Metric}
        | {str(t) for t in Timing}
    )


def _selected(
    names: Collection[str] | None, labels: Sequence[str]
) -> tuple[tuple[Count, ...], tuple[Share, ...], tuple[Timing, ...]]:
    counts = [c for c in COUNTS if all(k in LABELS[c.metric] for k in labels)]
    if names is not None:
        wanted = set(names)
        unknown = sorted(wanted - figure_names())
        if unknown:
            raise BadGrouping(f"unknown figures: {', '.join(unknown)}")
        counts = [c for c in counts if c.name in wanted or str(c.metric) in wanted]
    shown = {c.name for c in counts}
    shares = tuple(
        s
        for s in SHARES
        if (names is None or s.name in names or s.hits in shown)
        and all(n in COUNT_BY_NAME and _applies(COUNT_BY_NAME[n], labels) for n in share_inputs(s))
    )
    times = (
        tuple(t for t in TIMINGS if names is None or str(t) in names)
        if not any(name in LABEL_KEYS for name in labels)
        else ()
    )
    return tuple(counts), shares, times


def _applies(count: Count, labels: Sequence[str]) -> bool:
    return all(k in LABELS[count.metric] for k in labels)


def _days(since: date, until: date) -> Iterator[date]:
    for offset in range((until - since).days + 1):  # never past date.max
        yield since + timedelta(days=offset)


def aggregate(
    reader: StatsReader,
    since: date,
    until: date,
    *,
    by: Sequence[str] = (),
    figures: Collection[str] | None = None,
) -> StatsTable:
    """The figures of the days ``since``..``until`` (both included), grouped ``by``.

    Grouped by grains only, every period of the span has a row (zeros included), so a
    trend shows its empty months (up to ``MAX_DAYS``; beyond, the periods with data).
    Grouped by labels, a row per label value seen. ``until`` before ``since``: no rows."""
    by = parse_by(list(by))
    grains = [Grain(b) for b in by if b in Grain.__members__.values()]
    labels = [b for b in by if b not in Grain.__members__.values()]
    if not {Grain.DAY, Grain.WEEK} & set(grains):
        reader = by_month(reader)
    counts, shares, times = _selected(figures, labels)
    inputs = {n for s in shares for n in share_inputs(s)}
    summed = tuple(c for c in COUNTS if c in counts or c.name in inputs)
    metrics = {c.metric for c in summed}

    def key(day: date, row_labels: Mapping[str, str]) -> tuple[str, ...]:
        return tuple(
            period_of(day, Grain(b)) if b in Grain.__members__.values() else row_labels.get(b, "")
            for b in by
        )

    sums: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    if not labels and since <= until and (until - since).days < MAX_DAYS:
        for day in _days(since, until):  # every period shows, empty ones too
            sums[key(day, {})]
    for row in reader.counts(since, until, metrics) if metrics and since <= until else ():
        if row.metric not in metrics:
            continue
        cell = sums[key(row.day, row.labels)]
        for count in summed:
            if count.matches(row.metric, row.labels):
                cell[count.name] += row.value
    histograms: dict[tuple[str, ...], dict[Timing, dict[int, int]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(int))
    )
    if times and since <= until:
        for timing_row in reader.timings(since, until):
            if timing_row.timing in times:
                group = tuple(period_of(timing_row.day, g) for g in grains)
                histograms[group][timing_row.timing][timing_row.bucket] += timing_row.count
    rows = []
    for group in sorted(sums):
        cell = sums[group]
        totals = {name: sum(cell[p] for p in parts) for name, parts in HIDDEN_TOTALS.items()}
        rows.append(
            StatsRow(
                key=group,
                counts={c.name: cell[c.name] for c in counts},
                shares={
                    s.name: proportion(cell[s.hits], totals.get(s.total, cell[s.total]))
                    for s in shares
                },
                times={t: times_of(histograms[group][t]) for t in times},
            )
        )
    return StatsTable(
        since=since,
        until=until,
        by=by,
        counts=tuple(c.name for c in counts),
        shares=tuple(s.name for s in shares),
        times=times,
        rows=tuple(rows),
    )


def _seconds(value: float | None) -> float | None:
    """JSON has no infinity: a time beyond the last bound is ``None`` with a count > 0."""
    return None if value is None or value == float("inf") else value


def share_json(share: Proportion) -> dict[str, Any]:
    return {
        "hits": share.hits,
        "total": share.total,
        "value": share.value,
        "low": share.low,
        "high": share.high,
    }


def times_json(times: Times) -> dict[str, Any]:
    return {
        "count": times.count,
        "median_le_seconds": _seconds(times.median),
        "p90_le_seconds": _seconds(times.p90),
    }


def table_json(table: StatsTable) -> dict[str, Any]:
    """The table as ``/v1/stats`` and ``hashguard stats --format json`` show it."""
    return {
        "since": table.since.isoformat(),
        "until": table.until.isoformat(),
        "by": list(table.by),
        "rows": [
            {
                "key": dict(zip(table.by, row.key, strict=True)),
                "counts": dict(row.counts),
                "shares": {name: share_json(s) for name, s in row.shares.items()},
                "times": {str(t): times_json(v) for t, v in row.times.items()},
            }
            for row in table.rows
        ],
    }


def table_columns(table: StatsTable) -> list[str]:
    """The flat columns of ``table_records`` (CSV)."""
    return [
        *table.by,
        *table.counts,
        *(f"{s}{part}" for s in table.shares for part in ("", "_low", "_high")),
        *(f"{t}_{part}" for t in table.times for part in ("count", "median_s", "p90_s")),
    ]


def table_records(table: StatsTable) -> list[dict[str, Any]]:
    """One flat record per row (CSV): proportions as value, low and high; times as count,
    median and p90 in seconds (the upper bound of the bucket; ``inf`` beyond the last)."""
    records = []
    for row in table.rows:
        record: dict[str, Any] = dict(zip(table.by, row.key, strict=True))
        record.update(row.counts)
        for name, share in row.shares.items():
            record[name] = _fmt(share.value)
            record[f"{name}_low"] = _fmt(share.low)
            record[f"{name}_high"] = _fmt(share.high)
        for timing, times in row.times.items():
            record[f"{timing}_count"] = times.count
            record[f"{timing}_median_s"] = "" if times.median is None else times.median
            record[f"{timing}_p90_s"] = "" if times.p90 is None else times.p90
        records.append(record)
    return records


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
