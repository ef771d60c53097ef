"""Prometheus metrics of one app, in its own registry (no process-global state)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hashguard.domain.stats import StatsReader
from hashguard.web.routes import matching
from hashguard.web.stats_metrics import StatsCollector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "hashguard_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "hashguard_http_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.outcomes = Counter(
            "hashguard_scan_outcomes", "Outcomes of /v1/scan uploads", ["outcome"], registry=r
        )
        self.matches = Counter(
            "hashguard_matches", "Effective matches", ["bank", "algorithm"], registry=r
        )
        self.rejected = Counter(
            "hashguard_rejected", "Requests refused before any work", ["reason"], registry=r
        )
        self.index_entries = Gauge(
            "hashguard_index_entries", "Entries in the match index", registry=r
        )
        self.index_pending = Gauge(
            "hashguard_index_pending", "Index changes not yet compacted", registry=r
        )
        self.index_age = Gauge(
            "hashguard_index_age_seconds", "Seconds since the index last caught up", registry=r
        )
        self.exchange_syncs = Counter(
            "hashguard_exchange_syncs", "Exchange syncs", ["exchange", "result"], registry=r
        )
        self.queue_depth = Gauge(
            "hashguard_hashing_in_flight", "Uploads being decoded and hashed", registry=r
        )
        self.receiving = Gauge(
            "hashguard_uploads_receiving", "Upload bodies being received", registry=r
        )
        self.pool_rebuilds = Counter(
            "hashguard_hashing_pool_rebuilds",
            "Hashing worker pools rebuilt after they broke (a worker killed while idle)",
            ["pool"],
            registry=r,
        )
        self.pool_ready = Gauge(
            "hashguard_hashing_pool_ready",
            "1 while a hashing worker pool of the server can take work",
            registry=r,
        )

        self._stats: StatsCollector | None = None

    def watch_stats(self, reader: Callable[[], StatsReader | None]) -> None:
        """Expose the statistics rollups ``reader()`` gives (``web.stats_metrics``); a
        later call (the app started again) replaces the earlier one."""
        if self._stats is not None:
            self.registry.unregister(self._stats)
        self._stats = StatsCollector(reader)
        self.registry.register(self._stats)

    def render(self, refresh: Callable[[Metrics], None]) -> bytes:
        refresh(self)
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request by route template, not by raw path."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            template = _template(scope)
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - started)


def _template(scope: Scope) -> str:
    """The route template of a request, also for one answered before routing (by the
    gate: 401, 413, an overload 503), so that label sets stay small and meaningful."""
    route = scope.get("route") or next(iter(matching(scope)), None)
    return str(getattr(route, "path", "unmatched"))
