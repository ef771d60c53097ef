"""The statistics rollups as Prometheus counters, read from the store at scrape time.

Why a collector over the store rather than counters incremented in the process: the
rollups are written in the transaction of the event they count, by whichever process
handled it (server, worker, CLI). Reading their all-time totals at scrape time gives
every server process the same numbers, survives a restart without resetting (Prometheus
sees a counter that never goes down) and counts what the worker and the CLI did too.
The totals come from the monthly rollups (a few thousand rows whatever the traffic) and
are cached for ``ttl`` seconds so a burst of scrapes costs one read.

Labels are exactly the catalogue's label keys (``domain.stats.LABELS``): bounded values,
never a content id, a person, a URL or a hash.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import date

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from hashguard.domain.stats import LABELS, TIMING_BOUNDS, StatsReader, Timing
from hashguard.domain.stats import Metric as StatsMetric
from hashguard.stats.source import by_month

#: every rollup ever kept falls in these days (whole months: the monthly rollups answer)
SINCE = date(1970, 1, 1)
UNTIL = date(9999, 11, 30)
PREFIX = "hashguard_stats_"
DEFAULT_TTL = 5.0


def metric_name(metric: StatsMetric) -> str:
    """The exposed name of a catalogue metric, without the ``_total`` a counter gains."""
    return f"{PREFIX}{metric.value}"


TIMING_NAME = f"{PREFIX}time_seconds"


def exposed_names() -> list[str]:
    """Every series name this collector exposes (counters with their ``_total``)."""
    names = [f"{metric_name(m)}_total" for m in StatsMetric]
    return [*names, f"{TIMING_NAME}_bucket"]


class StatsCollector(Collector):
    """``reader`` gives the rollups at each read (None: none kept). Counters
    ``hashguard_stats_<metric>_total`` (labels: the catalogue's keys) and the
    histogram ``hashguard_stats_time_seconds`` (label ``timing``) of the measured times.
    The histogram has only its buckets (``histogram_quantile`` needs no more): the
    rollups keep no sum of the times, and a made-up ``_sum`` would mislead."""

    def __init__(
        self,
        reader: Callable[[], StatsReader | None],
        *,
        ttl: float = DEFAULT_TTL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._ttl = ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def describe(self) -> Iterable[Metric]:
        return []  # names are known only at collect; the registry must not collect early

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = self._monotonic()
            if self._cached is None or now - self._cached[0] >= self._ttl:
                self._cached = (now, self._read())
            families = self._cached[1]
        yield from families

    def _read(self) -> list[Metric]:
        found = self._reader()
        if found is None:  # this store keeps no rollups: nothing to expose
            return []
        reader = by_month(found)
        totals: Counter[tuple[StatsMetric, tuple[str, ...]]] = Counter()
        for row in reader.counts(SINCE, UNTIL):
            keys = LABELS[row.metric]
            totals[(row.metric, tuple(row.labels.get(k, "") for k in keys))] += row.value
        out: list[Metric] = []
        for metric in StatsMetric:
            family = CounterMetricFamily(
                metric_name(metric),
                f"Recorded {metric.value.replace('_', ' ')} (statistics rollups, all time)",
                labels=list(LABELS[metric]),
            )
            for (m, values), n in sorted(totals.items()):
                if m is metric:
                    family.add_metric(list(values), n)
            out.append(family)
        out.append(self._timings(reader))
        return out

    @staticmethod
    def _timings(reader: StatsReader) -> Metric:
        buckets: Counter[tuple[Timing, int]] = Counter()
        for row in reader.timings(SINCE, UNTIL):
            buckets[(row.timing, row.bucket)] += row.count
        family = HistogramMetricFamily(
            TIMING_NAME,
            "Measured times between recorded events (statistics rollups, all time)",
            labels=["timing"],
        )
        for timing in Timing:
            running = 0
            cumulative: list[tuple[str, float]] = []
            for index, bound in enumerate(TIMING_BOUNDS):
                running += buckets[(timing, index)]
                cumulative.append(("+Inf" if bound == float("inf") else str(bound), running))
            family.add_metric([timing.value], cumulative, sum_value=None)
        return family
