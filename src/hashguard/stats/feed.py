"""The aggregate feed for hotlines and NGOs: per-period counts, small numbers suppressed,
signed with the host's key (``signing``). Its JSON Schema is ``feed-v1.schema.json``.

Each metric appears in one table only, with one breakdown and (where the cells add up
to something) its total and no subtotals, so the total is the only linear relation the
suppression (``suppress``) has to protect. Times are published only when at least ``k``
were measured. Only bounded labels appear (list sources and categories, notifier kinds,
outcomes): never a person, a content id, a URL, a hash or a tenant. The hash check
service's tables (``hosts_served``, ``lookups``, ``lookup_matches``) sum the tenants
away; a cell only one tenant contributed to is suppressed like a small one.

Versioning: ``schema_version`` is an integer; a collector accepts the versions it knows.
Adding a table or an optional field keeps the version; removing or renaming anything,
or changing a meaning, makes a new version with a new schema file.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from hashguard.domain.stats import TIMING_BOUNDS, Metric, Period, StatsReader, Timing
from hashguard.stats.figures import quantile_bound
from hashguard.stats.source import by_month
from hashguard.stats.suppress import DEFAULT_K, suppress

SCHEMA_VERSION = 1
KIND = "hashguard.stats.feed"
SCHEMA_FILE = "feed-v1.schema.json"


@dataclass(frozen=True, kw_only=True, slots=True)
class TableSpec:
    name: str
    metric: Metric
    dimensions: tuple[str, ...]
    #: whether the cells add up to a meaningful total that is published
    total: bool
    help: str


TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        name="files_checked",
        metric=Metric.FILES_CHECKED,
        dimensions=("outcome",),
        total=True,
        help="files checked, by outcome (what was not checked shows as its own outcome)",
    ),
    TableSpec(
        name="matches",
        metric=Metric.MATCHES,
        dimensions=("source", "category"),
        total=True,
        help="matches against hash lists, by the list's source and the entry's category",
    ),
    TableSpec(
        name="cases_decided",
        metric=Metric.CASES_DECIDED,
        dimensions=("outcome",),
        total=True,
        help="review decisions: confirmed, false_positive, escalated",
    ),
    TableSpec(
        name="reports",
        metric=Metric.REPORTS,
        dimensions=("state",),
        # a report is counted when filed and again when acknowledged: no total
        total=False,
        help="reports to NCMEC's CyberTipline, by state (filed, acknowledged, failed)",
    ),
    TableSpec(
        name="notices",
        metric=Metric.NOTICES,
        dimensions=("notifier_kind",),
        total=True,
        help="DSA Art. 16 notices received, by kind of notifier",
    ),
    TableSpec(
        name="removals",
        metric=Metric.REMOVALS,
        dimensions=("how",),
        total=True,
        help="content removed or disabled, by how",
    ),
    TableSpec(
        name="referrals",
        metric=Metric.REFERRALS,
        dimensions=(),
        total=True,
        help="referrals to hotlines",
    ),
    TableSpec(
        name="lookups",
        metric=Metric.LOOKUPS,
        dimensions=(),
        total=True,
        help="hashes the hash check service's tenants looked up, across every tenant",
    ),
    TableSpec(
        name="lookup_matches",
        metric=Metric.LOOKUP_MATCHES,
        dimensions=("source", "category"),
        total=True,
        help="looked-up hashes that matched, by list source and category, across every tenant",
    ),
)

#: the service's tables: the tenant label is summed away and a non-zero cell only one
#: tenant contributed to is suppressed whatever its size (it would describe one host)
_TENANT_METRICS = frozenset({Metric.LOOKUPS, Metric.LOOKUP_MATCHES})
#: the number of hosts (tenants) that looked anything up in the period
HOSTS_SERVED = "hosts_served"


_HOSTS = TableSpec(
    name=HOSTS_SERVED,
    metric=Metric.LOOKUPS,
    dimensions=(),
    total=True,
    help="hosts (tenants of the hash check service) that looked up hashes in the period",
)


def schema() -> dict[str, Any]:
    """The feed's JSON Schema (draft 2020-12) of this version."""
    text = resources.files("hashguard.stats").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def envelope_schema() -> dict[str, Any]:
    """The schema of the signed envelope (the feed as its payload)."""
    return {**schema(), "$ref": "#/$defs/envelope"}


def _ms(bound: float | None) -> int | None:
    return None if bound is None or bound == float("inf") else round(bound * 1000)


def _table(
    spec: TableSpec,
    rows: Mapping[tuple[str, ...], int],
    k: int,
    forced: frozenset[tuple[str, ...]] = frozenset(),
) -> dict[str, Any]:
    published = suppress(rows, k=k, total=spec.total, forced=forced)
    table: dict[str, Any] = {
        "dimensions": list(spec.dimensions),
        "cells": [
            {
                "key": dict(zip(spec.dimensions, key, strict=True)),
                "count": published.cells[key],
                "suppressed": published.cells[key] is None,
            }
            for key in sorted(rows)
        ],
    }
    if spec.total:
        table["total"] = published.total
        table["total_suppressed"] = published.total is None
    return table


def _times(histogram: Mapping[int, int], k: int) -> dict[str, Any]:
    count = sum(histogram.values())
    if 0 < count < k:
        return {"count": None, "median_le_ms": None, "p90_le_ms": None, "suppressed": True}
    return {
        "count": count,
        "median_le_ms": _ms(quantile_bound(histogram, 0.5)),
        "p90_le_ms": _ms(quantile_bound(histogram, 0.9)),
        "suppressed": False,
    }


def build_feed(
    reader: StatsReader,
    period: Period,
    *,
    k: int = DEFAULT_K,
    publisher: str | None = None,
    at: datetime,
) -> dict[str, Any]:
    """The (unsigned) feed of ``period``: every table and time, suppressed under ``k``."""
    if k < 1:
        raise ValueError("k is at least 1")
    reader = by_month(reader)
    metrics = {spec.metric for spec in TABLES}
    sums: dict[str, dict[tuple[str, ...], int]] = {s.name: defaultdict(int) for s in TABLES}
    by_metric = {spec.metric: spec for spec in TABLES}
    contributors: dict[str, dict[tuple[str, ...], set[str]]] = {
        s.name: defaultdict(set) for s in TABLES
    }
    hosts: set[str] = set()
    for row in reader.counts(period.since, period.until, metrics):
        spec = by_metric.get(row.metric)
        if spec is None:
            continue
        key = tuple(row.labels.get(d, "") for d in spec.dimensions)
        sums[spec.name][key] += row.value
        if row.metric in _TENANT_METRICS and row.value:
            contributors[spec.name][key].add(row.labels.get("tenant", ""))
            if row.metric is Metric.LOOKUPS:
                hosts.add(row.labels.get("tenant", ""))
    forced = {
        name: frozenset(key for key, who in cells.items() if len(who) < 2)
        for name, cells in contributors.items()
    }
    for spec in TABLES:
        if not spec.dimensions:  # a table of one cell has it even when it is zero
            sums[spec.name][()] += 0
    histograms: dict[Timing, dict[int, int]] = {t: defaultdict(int) for t in Timing}
    for timing in reader.timings(period.since, period.until):
        histograms[timing.timing][timing.bucket] += timing.count
    return {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "publisher": publisher,
        "period": {
            "name": period.name,
            "since": period.since.isoformat(),
            "until": period.until.isoformat(),
        },
        "generated_at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "suppression": {"k": k, "method": "primary+complementary, zeros published"},
        "timing_bounds_ms": [_ms(b) for b in TIMING_BOUNDS],
        "tables": {
            **{spec.name: _table(spec, sums[spec.name], k, forced[spec.name]) for spec in TABLES},
            HOSTS_SERVED: _table(_HOSTS, {(): len(hosts)}, k),
        },
        "times": {str(t): _times(histograms[t], k) for t in Timing},
    }
