"""Statistics rollups: daily counts and timing histograms, added to inside the caller's
transaction, and read back by period (``StatsReader``).

Every write is an upsert that adds (``INSERT … ON CONFLICT DO UPDATE SET value =
value + excluded.value``): on PostgreSQL concurrent writers of the same cell wait on
its row lock and none loses an increment; on SQLite writers are serialised anyway.
Being inside the caller's transaction, a count commits with the event it counts or
not at all.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from hashguard.domain.stats import LABELS, CountRow, Metric, Timing, TimingRow, timing_bucket
from hashguard.store.schema import (
    banks,
    stats_counts,
    stats_counts_monthly,
    stats_timings,
    stats_timings_monthly,
)

#: a count cell: (day, metric, labels key)
Cell = tuple[date, Metric, str]
#: a timing cell: (day, timing, bucket)
TimingCell = tuple[date, Timing, int]


class UnknownLabel(ValueError):
    """A label the metric does not carry (``domain.stats.LABELS``)."""


def label_key(metric: Metric, labels: Mapping[str, str]) -> str:
    """The stored form of ``labels``: their values in ``LABELS[metric]`` order, as JSON."""
    keys = LABELS[metric]
    if any(k not in keys for k in labels):
        extra = sorted(set(labels) - set(keys))
        raise UnknownLabel(f"{metric} carries no label {extra} (it has {keys})")
    return _dumped(tuple(str(labels.get(k) or "") for k in keys))


@lru_cache(maxsize=8192)
def _dumped(values: tuple[str, ...]) -> str:
    # counted once per file checked: the same few label sets over and over
    return json.dumps(list(values), separators=(",", ":"))


def labels_of(metric: Metric, key: str) -> dict[str, str]:
    values = json.loads(key)
    return dict(zip(LABELS[metric], values, strict=False))


def cell(day: date, metric: Metric, **labels: str) -> Cell:
    return (day, metric, label_key(metric, labels))


#: one upsert statement per dialect and table, built once: building it (and its cache
#: key) cost more than running it
_UPSERTS: dict[tuple[str, str], Any] = {}


def _upsert(
    conn: Connection, table: Any, keys: tuple[str, ...], column: str, rows: list[dict[str, Any]]
) -> None:
    if not rows:
        return
    dialect = conn.dialect.name
    statement = _UPSERTS.get((dialect, table.name))
    if statement is None:
        maker = postgresql.insert if dialect == "postgresql" else sqlite.insert
        inserting = maker(table)
        statement = inserting.on_conflict_do_update(
            index_elements=list(keys),
            set_={column: table.c[column] + inserting.excluded[column]},
        )
        _UPSERTS[(dialect, table.name)] = statement
    # a stable order: two transactions adding the same cells take their row locks in
    # the same order (no deadlock between concurrent scan batches on PostgreSQL)
    rows.sort(key=lambda r: tuple(str(r[k]) for k in keys))
    conn.execute(statement, rows)


def add_counts(conn: Connection, counts: Mapping[Cell, int]) -> None:
    """Add ``counts`` to the daily and the monthly rollups inside the caller's
    transaction."""
    monthly: Counter[tuple[date, str, str]] = Counter()
    for (day, metric, key), n in counts.items():
        monthly[(day.replace(day=1), str(metric), key)] += n
    _upsert(
        conn,
        stats_counts,
        ("day", "metric", "labels"),
        "value",
        [
            {"day": day, "metric": str(metric), "labels": key, "value": n}
            for (day, metric, key), n in counts.items()
            if n
        ],
    )
    _upsert(
        conn,
        stats_counts_monthly,
        ("month", "metric", "labels"),
        "value",
        [
            {"month": month, "metric": metric, "labels": key, "value": n}
            for (month, metric, key), n in monthly.items()
            if n
        ],
    )


def add_timings(conn: Connection, timings: Mapping[TimingCell, int]) -> None:
    monthly: Counter[tuple[date, str, int]] = Counter()
    for (day, timing, bucket), n in timings.items():
        monthly[(day.replace(day=1), str(timing), bucket)] += n
    _upsert(
        conn,
        stats_timings,
        ("day", "timing", "bucket"),
        "count",
        [
            {"day": day, "timing": str(timing), "bucket": bucket, "count": n}
            for (day, timing, bucket), n in timings.items()
            if n
        ],
    )
    _upsert(
        conn,
        stats_timings_monthly,
        ("month", "timing", "bucket"),
        "count",
        [
            {"month": month, "timing": timing, "bucket": bucket, "count": n}
            for (month, timing, bucket), n in monthly.items()
            if n
        ],
    )


def count(conn: Connection, metric: Metric, *, day: date, n: int = 1, **labels: str) -> None:
    """Count ``n`` events of ``metric`` on ``day`` inside the caller's transaction (the
    hook for events recorded outside the audit mapping, e.g. appeals)."""
    add_counts(conn, {cell(day, metric, **labels): n})


def time_taken(conn: Connection, timing: Timing, *, day: date, seconds: float) -> None:
    add_timings(conn, {(day, timing, timing_bucket(seconds)): 1})


def day_of(at: datetime) -> date:
    """The day (UTC) an event at ``at`` is counted on."""
    return (at if at.tzinfo is None else at.astimezone(UTC)).date()


def bank_sources(conn: Connection) -> dict[str, str | None]:
    """Each bank's list source (the ``source`` label of its matches)."""
    return {row.name: row.source for row in conn.execute(select(banks.c.name, banks.c.source))}


class Tally:
    """Counts and times gathered during a transaction, written in one upsert each."""

    def __init__(self) -> None:
        self.counts: Counter[Cell] = Counter()
        self.timings: Counter[TimingCell] = Counter()

    def count(self, day: date, metric: Metric, n: int = 1, **labels: str) -> None:
        self.counts[cell(day, metric, **labels)] += n

    def time(self, day: date, timing: Timing, seconds: float) -> None:
        self.timings[(day, timing, timing_bucket(max(seconds, 0.0)))] += 1

    def __bool__(self) -> bool:
        return bool(self.counts) or bool(self.timings)

    def flush(self, conn: Connection) -> None:
        counts, timings = self.counts, self.timings
        self.counts, self.timings = Counter(), Counter()
        add_counts(conn, counts)
        add_timings(conn, timings)


_METRICS = {str(m): m for m in Metric}
_TIMINGS = {str(t): t for t in Timing}


def _next_month(day: date) -> date:
    first = day.replace(day=1)
    return (first + timedelta(days=32)).replace(day=1)


class StatsStore:
    """The rollups: ``StatsReader`` for everything that shows the numbers."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def counts(
        self, since: date, until: date, metrics: Collection[Metric] | None = None
    ) -> Sequence[CountRow]:
        query = select(
            stats_counts.c.day, stats_counts.c.metric, stats_counts.c.labels, stats_counts.c.value
        ).where(stats_counts.c.day >= since, stats_counts.c.day <= until)
        if metrics is not None:
            query = query.where(stats_counts.c.metric.in_([str(m) for m in metrics]))
        known = {str(m): m for m in Metric}
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(stats_counts.c.day)).all()
        out: list[CountRow] = []
        parsed: dict[tuple[Metric, str], dict[str, str]] = {}
        for row in rows:
            metric = known.get(row.metric)
            if metric is None:  # written by a newer version: not ours to show
                continue
            labels = parsed.get((metric, row.labels))
            if labels is None:
                labels = parsed[(metric, row.labels)] = labels_of(metric, row.labels)
            out.append(CountRow(day=row.day, metric=metric, labels=labels, value=int(row.value)))
        return out

    def monthly(
        self, since: date, until: date, metrics: Collection[Metric] | None = None
    ) -> tuple[Sequence[CountRow], Sequence[TimingRow]]:
        """The rollups of ``since``..``until`` by calendar month (each row's ``day`` is
        the first of its month): whole months from the monthly rollups (a year is a few
        thousand rows whatever the traffic), the days of a month the period cuts
        summed from the daily rows. Same contents as summing ``counts`` and ``timings``."""
        counts: Counter[tuple[date, Metric, str]] = Counter()
        timings: Counter[tuple[date, Timing, int]] = Counter()
        wanted = None if metrics is None else [str(m) for m in metrics]
        first_whole = since if since.day == 1 else _next_month(since)
        after_whole = (
            _next_month(until)
            if _next_month(until) - timedelta(days=1) == until
            else until.replace(day=1)
        )
        if first_whole < after_whole:
            whole: tuple[date, date] | None = (first_whole, after_whole)
            ranges = [(since, first_whole - timedelta(days=1)), (after_whole, until)]
        else:
            whole, ranges = None, [(since, until)]
        with self._engine.connect() as conn:
            if whole is not None:
                self._add_months(conn, whole, wanted, counts, timings)
            for start, end in ranges:
                if start <= end:
                    self._add_days(conn, (start, end), wanted, counts, timings)
        count_rows = sorted(
            (
                CountRow(day=month, metric=metric, labels=labels_of(metric, key), value=n)
                for (month, metric, key), n in counts.items()
            ),
            key=lambda r: r.day,
        )
        timing_rows = sorted(
            (
                TimingRow(day=month, timing=timing, bucket=bucket, count=n)
                for (month, timing, bucket), n in timings.items()
            ),
            key=lambda r: r.day,
        )
        return count_rows, timing_rows

    def month_mismatches(self, since: date, until: date) -> list[tuple[date, str, str, int, int]]:
        """Monthly rollup cells of the months ``since``..``until`` touch that differ
        from the sum of their daily cells: (month, metric or timing, labels key or
        bucket, monthly value, daily sum)."""
        first, after = since.replace(day=1), _next_month(until)
        months: tuple[Counter[tuple[date, Metric, str]], Counter[tuple[date, Timing, int]]] = (
            Counter(),
            Counter(),
        )
        days: tuple[Counter[tuple[date, Metric, str]], Counter[tuple[date, Timing, int]]] = (
            Counter(),
            Counter(),
        )
        with self._engine.connect() as conn:
            self._add_months(conn, (first, after), None, *months)
            self._add_days(conn, (first, after - timedelta(days=1)), None, *days)
        out: list[tuple[date, str, str, int, int]] = []
        for key in sorted(set(months[0]) | set(days[0]), key=str):
            if months[0][key] != days[0][key]:
                out.append((key[0], str(key[1]), key[2], months[0][key], days[0][key]))
        for tkey in sorted(set(months[1]) | set(days[1]), key=str):
            if months[1][tkey] != days[1][tkey]:
                out.append((tkey[0], str(tkey[1]), str(tkey[2]), months[1][tkey], days[1][tkey]))
        return out

    @staticmethod
    def _add_months(
        conn: Connection,
        months: tuple[date, date],
        wanted: list[str] | None,
        counts: Counter[tuple[date, Metric, str]],
        timings: Counter[tuple[date, Timing, int]],
    ) -> None:
        """Months ``first <= month < after`` of the monthly rollups."""
        first, after = months
        table, ttable = stats_counts_monthly, stats_timings_monthly
        query = select(table).where(table.c.month >= first, table.c.month < after)
        if wanted is not None:
            query = query.where(table.c.metric.in_(wanted))
        for row in conn.execute(query):
            if row.metric in _METRICS:
                counts[(row.month, _METRICS[row.metric], row.labels)] += int(row.value)
        for row in conn.execute(
            select(ttable).where(ttable.c.month >= first, ttable.c.month < after)
        ):
            if row.timing in _TIMINGS:
                key = (row.month, _TIMINGS[row.timing], int(row.bucket))
                timings[key] += int(row._mapping["count"])

    @staticmethod
    def _add_days(
        conn: Connection,
        days: tuple[date, date],
        wanted: list[str] | None,
        counts: Counter[tuple[date, Metric, str]],
        timings: Counter[tuple[date, Timing, int]],
    ) -> None:
        """Days ``start``..``end`` of the daily rollups, by month."""
        start, end = days
        query = select(stats_counts).where(stats_counts.c.day >= start, stats_counts.c.day <= end)
        if wanted is not None:
            query = query.where(stats_counts.c.metric.in_(wanted))
        for row in conn.execute(query):
            if row.metric in _METRICS:
                counts[(row.day.replace(day=1), _METRICS[row.metric], row.labels)] += int(row.value)
        for row in conn.execute(
            select(stats_timings).where(stats_timings.c.day >= start, stats_timings.c.day <= end)
        ):
            if row.timing in _TIMINGS:
                key = (row.day.replace(day=1), _TIMINGS[row.timing], int(row.bucket))
                timings[key] += int(row._mapping["count"])

    def timings(self, since: date, until: date) -> Sequence[TimingRow]:
        known = {str(t): t for t in Timing}
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(stats_timings)
                .where(stats_timings.c.day >= since, stats_timings.c.day <= until)
                .order_by(stats_timings.c.day)
            ).all()
        return [
            TimingRow(
                day=r.day,
                timing=known[r.timing],
                bucket=int(r.bucket),
                count=int(r._mapping["count"]),
            )
            for r in rows
            if r.timing in known
        ]

    def cells(self, since: date, until: date) -> tuple[Counter[Cell], Counter[TimingCell]]:
        """The rollups of the days as raw cells (what verification compares)."""
        counts: Counter[Cell] = Counter()
        timings: Counter[TimingCell] = Counter()
        known = {str(m): m for m in Metric}
        known_t = {str(t): t for t in Timing}
        with self._engine.connect() as conn:
            for row in conn.execute(
                select(stats_counts).where(stats_counts.c.day >= since, stats_counts.c.day <= until)
            ):
                if row.metric in known:
                    counts[(row.day, known[row.metric], row.labels)] += int(row.value)
            for row in conn.execute(
                select(stats_timings).where(
                    stats_timings.c.day >= since, stats_timings.c.day <= until
                )
            ):
                if row.timing in known_t:
                    timings[(row.day, known_t[row.timing], int(row.bucket))] += int(
                        row._mapping["count"]
                    )
        return counts, timings

    def count(self, metric: Metric, *, at: datetime, n: int = 1, **labels: str) -> None:
        """Count ``n`` events of ``metric`` at ``at``. Inside ``Store.atomic()`` this
        joins the block's transaction: the hook for an event recorded without an audit
        event that ``store.stats_events`` maps (e.g. ``Metric.APPEALS``, state=…).
        Call it before the block appends its audit entry (the log's lock is last)."""
        with self._engine.begin() as conn:
            add_counts(conn, {cell(day_of(at), metric, **labels): n})

    def time(self, timing: Timing, *, at: datetime, seconds: float) -> None:
        """Count a measured time (``Store.atomic()``: in the block's transaction)."""
        with self._engine.begin() as conn:
            add_timings(conn, {(day_of(at), timing, timing_bucket(max(seconds, 0.0))): 1})

    def add(self, counts: Mapping[Cell, int], timings: Mapping[TimingCell, int] = {}) -> None:
        """Add cells in a transaction of their own (benchmarks, imports)."""
        with self._engine.begin() as conn:
            add_counts(conn, counts)
            add_timings(conn, timings)

    def bank_sources(self) -> dict[str, str | None]:
        with self._engine.connect() as conn:
            return bank_sources(conn)

    def recount(self, since: date, until: date) -> tuple[Tally, int, int]:
        """The days recounted from the audit log and the scan results
        (``store.stats_recount``): the tally, audit events replayed, results recounted."""
        from hashguard.store.stats_recount import recount  # noqa: PLC0415 (it imports this module)

        return recount(self._engine, since, until)

    def rows(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(stats_counts)).scalar_one())

    def clear(self) -> None:
        """Remove every rollup row (tests and benchmarks only)."""
        with self._engine.begin() as conn:
            for table in (stats_counts, stats_timings, stats_counts_monthly, stats_timings_monthly):
                conn.execute(delete(table))


def tally_of(cells: Iterable[tuple[Cell, int]]) -> Counter[Cell]:
    out: Counter[Cell] = Counter()
    for key, n in cells:
        out[key] += n
    return out
