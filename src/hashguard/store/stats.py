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
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from hashguard.domain.stats import LABELS, CountRow, Metric, Timing, TimingRow, timing_bucket
from hashguard.store.schema import banks, stats_counts, stats_timings

#: a count cell: (day, metric, labels key)
Cell = tuple[date, Metric, str]
#: a timing cell: (day, timing, bucket)
TimingCell = tuple[date, Timing, int]


class UnknownLabel(ValueError):
    """A label the metric does not carry (``domain.stats.LABELS``)."""


def label_key(metric: Metric, labels: Mapping[str, str]) -> str:
    """The stored form of ``labels``: their values in ``LABELS[metric]`` order, as JSON."""
    keys = LABELS[metric]
    extra = set(labels) - set(keys)
    if extra:
        raise UnknownLabel(f"{metric} carries no label {sorted(extra)} (it has {keys})")
    return json.dumps([str(labels.get(k) or "") for k in keys], separators=(",", ":"))


def labels_of(metric: Metric, key: str) -> dict[str, str]:
    values = json.loads(key)
    return dict(zip(LABELS[metric], values, strict=False))


def cell(day: date, metric: Metric, **labels: str) -> Cell:
    return (day, metric, label_key(metric, labels))


def _upsert(
    conn: Connection, table: Any, keys: tuple[str, ...], column: str, rows: list[dict[str, Any]]
) -> None:
    if not rows:
        return
    dialect = conn.dialect.name
    maker = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = maker(table)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={column: table.c[column] + statement.excluded[column]},
    )
    # a stable order: two transactions adding the same cells take their row locks in
    # the same order (no deadlock between concurrent scan batches on PostgreSQL)
    rows.sort(key=lambda r: tuple(str(r[k]) for k in keys))
    conn.execute(statement, rows)


def add_counts(conn: Connection, counts: Mapping[Cell, int]) -> None:
    """Add ``counts`` to the rollups inside the caller's transaction."""
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


def add_timings(conn: Connection, timings: Mapping[TimingCell, int]) -> None:
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


def _month(conn: Connection, day: Any) -> Any:
    """The month of a ``day`` column as an SQL expression (``YYYY-MM`` text on SQLite,
    the month's first day on PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        return func.date_trunc("month", day)
    return func.substr(day, 1, 7)


def _first(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date().replace(day=1)
    if isinstance(value, date):
        return value.replace(day=1)
    year, month = str(value)[:7].split("-")
    return date(int(year), int(month), 1)


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
        """The rollups of ``since``..``until`` summed by calendar month in the database
        (each row's ``day`` is the first of its month): a year is a few thousand rows
        whatever the traffic. Same contents as summing ``counts`` and ``timings``."""
        with self._engine.connect() as conn:
            month = _month(conn, stats_counts.c.day)
            query = (
                select(
                    month,
                    stats_counts.c.metric,
                    stats_counts.c.labels,
                    func.sum(stats_counts.c.value),
                )
                .where(stats_counts.c.day >= since, stats_counts.c.day <= until)
                .group_by(month, stats_counts.c.metric, stats_counts.c.labels)
            )
            if metrics is not None:
                query = query.where(stats_counts.c.metric.in_([str(m) for m in metrics]))
            count_rows = conn.execute(query).all()
            tmonth = _month(conn, stats_timings.c.day)
            timing_rows = conn.execute(
                select(
                    tmonth,
                    stats_timings.c.timing,
                    stats_timings.c.bucket,
                    func.sum(stats_timings.c.count),
                )
                .where(stats_timings.c.day >= since, stats_timings.c.day <= until)
                .group_by(tmonth, stats_timings.c.timing, stats_timings.c.bucket)
            ).all()
        known = {str(m): m for m in Metric}
        known_t = {str(t): t for t in Timing}
        counts = [
            CountRow(
                day=_first(day),
                metric=known[metric],
                labels=labels_of(known[metric], labels),
                value=int(value),
            )
            for day, metric, labels, value in count_rows
            if metric in known
        ]
        timings = [
            TimingRow(day=_first(day), timing=known_t[timing], bucket=int(bucket), count=int(n))
            for day, timing, bucket, n in timing_rows
            if timing in known_t
        ]
        counts.sort(key=lambda r: r.day)
        timings.sort(key=lambda r: r.day)
        return counts, timings

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
            conn.execute(delete(stats_counts))
            conn.execute(delete(stats_timings))


def tally_of(cells: Iterable[tuple[Cell, int]]) -> Counter[Cell]:
    out: Counter[Cell] = Counter()
    for key, n in cells:
        out[key] += n
    return out
