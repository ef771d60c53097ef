"""The statistics rollups on ``/metrics``: counters equal to the rollups' all-time totals,
labels only the catalogue's keys, and every metric the Grafana dashboard queries exists."""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hashguard.domain.stats import LABELS, Metric, StatsReader
from hashguard.domain.tokens import Scope
from hashguard.settings import Settings
from hashguard.web.app import create_app
from hashguard.web.stats_metrics import StatsCollector, exposed_names, metric_name
from tests.api_support import bearer, make_token
from tests.server import running_server
from tests.stats_workload import workload

DASHBOARD = Path(__file__).parents[1] / "docs" / "grafana" / "hashguard.json"


@pytest.fixture(scope="module")
def reader() -> StatsReader:
    return workload()


@contextlib.contextmanager
def _metrics_of(settings: Settings, reader: StatsReader) -> Iterator[str]:
    app = create_app(settings, background=False)
    scraper = bearer(make_token(settings, Scope.STATS, name="prometheus"))
    with running_server(settings, app=app) as base:
        app.state.services.stats = reader  # the rollups the recording would keep
        answer = httpx.get(f"{base}/metrics", headers=scraper, timeout=30)
        assert answer.status_code == 200, answer.text
        yield answer.text


def _totals(reader: StatsReader) -> Counter[tuple[str, tuple[str, ...]]]:
    out: Counter[tuple[str, tuple[str, ...]]] = Counter()
    for row in reader.counts(date(1970, 1, 1), date(9999, 11, 30)):
        keys = LABELS[row.metric]
        out[(row.metric.value, tuple(row.labels.get(k, "") for k in keys))] += row.value
    return out


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_metrics_are_the_rollups_totals_and_cover_the_dashboard(
    api_settings: Settings, reader: StatsReader
) -> None:
    with _metrics_of(api_settings, reader) as text:
        pass
    seen: Counter[tuple[str, tuple[str, ...]]] = Counter()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.add(sample.name)
            for metric in Metric:
                if sample.name == f"{metric_name(metric)}_total":
                    assert set(sample.labels) == set(LABELS[metric])  # bounded: catalogue keys
                    values = tuple(sample.labels[k] for k in LABELS[metric])
                    seen[(metric.value, values)] += int(sample.value)
    assert seen == _totals(reader)
    # a counter with no rollup rows has no samples (the seeded workload has no lookups)
    recorded = {f"{metric_name(Metric(m))}_total" for m, _ in seen} | {
        n for n in exposed_names() if not n.endswith("_total")
    }
    assert recorded <= names
    assert {f"{metric_name(m)}_total" for m in Metric} <= set(exposed_names())
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    queried = {n for e in exprs for n in re.findall(r"\bhashguard_[a-z_]+", e)}
    assert len(queried) >= len(Metric) - 4, "the dashboard queries few of the counters"
    missing = {n for n in queried if n not in names}
    assert not missing, f"the dashboard queries metrics /metrics does not expose: {missing}"


def test_the_collector_caches_for_its_ttl(reader: StatsReader) -> None:
    now = [0.0]
    reads = [0]

    def counted() -> StatsReader:
        reads[0] += 1
        return reader

    collector = StatsCollector(counted, ttl=5, monotonic=lambda: now[0])
    first = list(collector.collect())
    now[0] = 4.9
    assert list(collector.collect()) == first
    assert reads[0] == 1
    now[0] = 5.0
    list(collector.collect())
    assert reads[0] == 2
    assert list(StatsCollector(lambda: None).collect()) == []
