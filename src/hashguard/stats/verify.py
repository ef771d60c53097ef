"""``hashguard stats verify``: a period's rollups compared with a recount from the records.

The monthly rollups of the months the period touches are also compared with the sum
of their daily rows (both are written by one upsert; a difference means a hand edit).

The recount (``Store.stats.recount``) replays the audit log — every case, report,
statement, notice, referral, removal and matched file's decision is an audit event
committed with its change — and recounts the scan results of scan runs. Both are
never pruned today, so every such cell is compared exactly.

Some counts have no record to recount, by design: a file checked through an upload
or a notice that matched nothing is counted and never kept (nothing that did not
match is kept), and the time from an upload to its decision is measured, not
recorded. Those cells are listed as not recomputable, with their totals, never as
differences.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date

from hashguard.domain.stats import Metric, Timing, Way
from hashguard.store import Store
from hashguard.store.stats import Cell, TimingCell, labels_of

#: metrics whose ``way`` label says whether the file was recorded one by one
_FILE_METRICS = frozenset({Metric.FILES_CHECKED, Metric.MATCHES, Metric.REMOTE_CALLS})
#: ways whose files are recorded as scan results (the rest are counted only)
_RECORDED_WAYS = frozenset({str(Way.SCAN)})
#: timings measured, not recorded
_MEASURED = frozenset({Timing.UPLOAD_TO_DECISION})


@dataclass(frozen=True, kw_only=True, slots=True)
class Difference:
    day: date
    #: a metric or a timing
    name: str
    #: the labels, or ``bucket=<index>`` for a timing
    labels: dict[str, str]
    recorded: int
    recounted: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Verification:
    since: date
    until: date
    differences: tuple[Difference, ...]
    #: cells compared, audit events replayed, scan results recounted
    cells: int
    events: int
    results: int
    #: counted but not recomputable: (what, total) — files never kept, measured times
    not_recomputable: tuple[tuple[str, int], ...]

    @property
    def ok(self) -> bool:
        return not self.differences


def _recomputable(key: Cell) -> bool:
    _day, metric, labels = key
    if metric in _FILE_METRICS:
        return labels_of(metric, labels).get("way", "") in _RECORDED_WAYS
    return True


def verify(store: Store, since: date, until: date) -> Verification:
    """Compare the rollups of ``since``..``until`` with a recount from the records."""
    if until < since:
        raise ValueError("the period ends before it starts")
    recorded, recorded_times = store.stats.cells(since, until)
    tally, events, results = store.stats.recount(since, until)
    differences: list[Difference] = []
    skipped: Counter[str] = Counter()
    keys = set(recorded) | set(tally.counts)
    compared = 0
    for key in sorted(keys, key=lambda k: (k[0], str(k[1]), k[2])):
        day, metric, labels = key
        if not _recomputable(key):
            way = labels_of(metric, labels).get("way", "")
            skipped[f"{metric}" + (f" way={way}" if way else "")] += recorded[key]
            continue
        compared += 1
        if recorded[key] != tally.counts[key]:
            differences.append(
                Difference(
                    day=day,
                    name=str(metric),
                    labels=labels_of(metric, labels),
                    recorded=recorded[key],
                    recounted=tally.counts[key],
                )
            )
    time_keys: set[TimingCell] = set(recorded_times) | set(tally.timings)
    for tkey in sorted(time_keys, key=lambda k: (k[0], str(k[1]), k[2])):
        day, timing, bucket = tkey
        if timing in _MEASURED:
            skipped[f"{timing} (measured)"] += recorded_times[tkey]
            continue
        compared += 1
        if recorded_times[tkey] != tally.timings[tkey]:
            differences.append(
                Difference(
                    day=day,
                    name=str(timing),
                    labels={"bucket": str(bucket)},
                    recorded=recorded_times[tkey],
                    recounted=tally.timings[tkey],
                )
            )
    for month, name, cell_key, monthly, daily in store.stats.month_mismatches(since, until):
        differences.append(
            Difference(
                day=month,
                name=f"{name} (month)",
                labels={"cell": cell_key},
                recorded=monthly,
                recounted=daily,
            )
        )
    return Verification(
        since=since,
        until=until,
        differences=tuple(differences),
        cells=compared,
        events=events,
        results=results,
        not_recomputable=tuple(sorted(skipped.items())),
    )
