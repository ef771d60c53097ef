"""Everything a running server holds, built from the settings; and server-side scan runs."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hashguard.actions.outbox import endpoints_of
from hashguard.domain.actions import WebhookEndpoint
from hashguard.domain.scans import ScanOptions, ScanRun
from hashguard.domain.stats import StatsReader
from hashguard.evidence import Vault, open_vault
from hashguard.hashing.hasher import BUILTIN_HASHERS, Hasher, enabled_hashers
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions
from hashguard.keys import MasterKey, master_key_for
from hashguard.matching.service import MatcherService
from hashguard.permissions import warn_about_permissions
from hashguard.plugins import Registry
from hashguard.remote.service import RemoteMatching, remote_matching, sends_pdq_hashes
from hashguard.scan.classify import policies_of
from hashguard.scan.objectruns import (
    BucketNotAllowed,
    ObjectScanArgs,
    allowed,
    check_allowed,
    incremental,
    object_scanner,
)
from hashguard.scan.objects import NeedsExtra
from hashguard.scan.pipeline import OnceVault, Pipeline
from hashguard.scan.scanner import ScanAlreadyRunning, Scanner, prepare_run
from hashguard.scan.sources import scan_options
from hashguard.settings import Settings
from hashguard.stats.memory import MemoryStatsReader
from hashguard.stats.source import StatsUnavailable, reader_of
from hashguard.store import Store
from hashguard.web.auth import Authenticator
from hashguard.web.limits import Admission, LookupLimiter, Receiving, TenantLimiter
from hashguard.web.metrics import Metrics
from hashguard.web.probing import ProbeGuard
from hashguard.web.problems import ProblemError
from hashguard.web.tenancy import TenantDirectory

log = logging.getLogger("hashguard.web")

#: upload workers run below the server's priority, so it stays responsive under load
WORKER_NICENESS = 10
RUN_ACTOR = "system:scan_run"
#: the pipeline's actor until a request names its own (``Pipeline.acting_as``)
PIPELINE_ACTOR = "system:scan"


class RunManager:
    """Scan runs of server-side folders, one thread each, confined to ``scan_roots``."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        matcher: MatcherService,
        pipeline: Pipeline,
        *,
        on_rebuild: Callable[[str], None] | None = None,
        hashers: tuple[Hasher, ...] = BUILTIN_HASHERS,
    ) -> None:
        self._settings = settings
        self._hashers = hashers
        self._on_rebuild = on_rebuild
        self._store = store
        self._matcher = matcher
        self._pipeline = pipeline.acting_as(RUN_ACTOR)
        self._roots = [os.path.realpath(root) for root in settings.scan_roots]
        self._lock = threading.Lock()
        self._active: dict[int, threading.Thread] = {}
        self._stopping = threading.Event()

    def start(
        self,
        paths: list[str],
        *,
        dihedral: bool,
        rescan: bool,
        objects: ObjectScanArgs | None = None,
    ) -> ScanRun:
        """Start (or resume) a run over ``paths``: folders under ``scan_roots``, or with
        ``objects`` the s3:// addresses it names, inside ``scan_buckets``."""
        if objects is not None:
            return self._start_objects(objects, dihedral=dihedral, rescan=rescan)
        if not self._roots:
            raise ProblemError(403, "Not allowed", "no scan roots are configured on this server")
        for path in paths:
            real = os.path.realpath(path)
            if not os.path.isabs(path) or not any(
                real == root or real.startswith(root + os.sep) for root in self._roots
            ):
                raise ProblemError(
                    403, "Not allowed", f"{path} is not an absolute path under a scan root"
                )
        return self._launch(paths, scan_options(self._settings, dihedral=dihedral), rescan, None)

    def _start_objects(self, objects: ObjectScanArgs, *, dihedral: bool, rescan: bool) -> ScanRun:
        try:
            check_allowed(objects.uris, self._settings.scan_buckets)
        except BucketNotAllowed as exc:
            raise ProblemError(403, "Bucket not allowed", str(exc)) from None
        if objects.inventory is not None and not allowed(
            objects.inventory, self._settings.scan_buckets
        ):
            raise ProblemError(
                403,
                "Bucket not allowed",
                f"{objects.inventory} is not under a bucket this server may read",
            )
        try:
            from hashguard.scan.objects import ObjectStore  # noqa: PLC0415 - the s3 extra

            store = ObjectStore(endpoint_url=self._settings.s3_endpoint_url, rate=objects.rate)
        except NeedsExtra as exc:
            raise ProblemError(503, "Not available", str(exc)) from None
        options = scan_options(self._settings, dihedral=dihedral)
        return self._launch(list(objects.uris), options, rescan, (objects, store))

    def _launch(
        self,
        paths: list[str],
        options: ScanOptions,
        rescan: bool,
        objects: tuple[ObjectScanArgs, Any] | None,
    ) -> ScanRun:
        scope = objects[0].scope() if objects is not None else None
        with self._lock:  # one thread per run: a run active here is not resumed twice
            try:
                prepared = prepare_run(
                    self._store.scans, paths, options, rescan=rescan, scope=scope
                )
            except ScanAlreadyRunning as exc:  # by another process
                raise ProblemError(409, "Conflict", str(exc)) from None
            run = prepared.run
            if run.id in self._active:
                raise ProblemError(409, "Conflict", f"scan run #{run.id} is already running here")
            thread = threading.Thread(
                target=self._run, args=(run, objects), name=f"scan-run-{run.id}", daemon=True
            )
            self._active[run.id] = thread
        thread.start()
        return run

    def active(self, run_id: int) -> bool:
        with self._lock:
            return run_id in self._active

    def _run(self, run: ScanRun, objects: tuple[ObjectScanArgs, Any] | None = None) -> None:
        try:
            with HashingPool(
                workers=self._settings.run_workers,
                options=HashOptions.for_scan(
                    run.options,
                    confine=self._roots if objects is None else None,
                    also_reference=sends_pdq_hashes(self._pipeline.remote),
                    hashers=self._hashers,
                ),
                timeout=self._settings.decode_timeout,
                video_timeout=self._settings.video_timeout,
                memory_mb=self._settings.worker_memory_mb,
                on_rebuild=self._on_rebuild,
            ) as pool:
                parts: dict[str, Any] = {
                    "store": self._store.scans,
                    "matcher": self._matcher,
                    "pool": pool,
                    "pipeline": self._pipeline.with_hashing(pool),
                }
                if objects is None:
                    Scanner(confine=self._roots, **parts).run(run, on_result=self._check_stop)
                    return
                scanner = object_scanner(
                    objects[0],
                    objects[1],
                    already_checked=incremental(self._settings, self._store),
                    **parts,
                )
                try:
                    scanner.run(run, on_result=self._check_stop)
                finally:
                    scanner.close()
        except Exception:
            log.exception("scan run %s stopped", run.id)
        finally:
            with self._lock:
                self._active.pop(run.id, None)

    def _check_stop(self, _result: object) -> None:
        if self._stopping.is_set():
            raise KeyboardInterrupt  # the scanner saves its work and marks the run interrupted

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            threads = list(self._active.values())
        for thread in threads:
            thread.join(timeout=30)


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _owner_disabled(store: Store) -> Callable[[int], bool]:
    """Whether a token acts for a person who has been disabled (their tokens stop too)."""

    def disabled(token_id: int) -> bool:
        owner = store.people.token_owner(token_id)
        return owner is not None and owner.disabled

    return disabled


def _stats_reader(store: Store) -> StatsReader:
    """The store's rollups; a store of a version that keeps none shows zeros (and the log
    says so) rather than failing every statistics request."""
    try:
        return reader_of(store)
    except StatsUnavailable:
        log.warning("this store keeps no statistics rollups: the statistics views show zeros")
        return MemoryStatsReader()


@dataclass(kw_only=True)
class Services:
    settings: Settings
    store: Store
    pool: HashingPool
    matcher: MatcherService
    authenticator: Authenticator
    admission: Admission
    receiving: Receiving
    lookups: LookupLimiter
    probes: ProbeGuard
    metrics: Metrics
    runs: RunManager
    registry: Registry
    remote: RemoteMatching | None
    #: what follows an upload's hashes (acting as the API token: ``acting_as``)
    pipeline: Pipeline
    _vault: OnceVault
    #: tenants of the hash check service (their quotas and rates, kept briefly)
    tenants: TenantDirectory
    #: each tenant's rate limit, shared by its tokens
    tenant_rates: TenantLimiter
    #: what time it is (UTC): tenants' days and quotas follow it
    clock: Callable[[], datetime]
    ready_error: str | None = field(default=None)
    #: the statistics rollups the views read (None: this store keeps none)
    stats: StatsReader | None = field(default=None)

    @classmethod
    def start(
        cls,
        settings: Settings,
        store: Store,
        metrics: Metrics,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> Services:
        """Everything the server holds; ``clock`` (default: the wall clock) decides the
        UTC day tenants' quotas are counted on and their rate limits' time."""
        now = clock if clock is not None else _wall_clock
        warn_about_permissions(settings)
        registry = Registry.load(settings.adapters)
        hashers = enabled_hashers(registry)
        remote = remote_matching(
            settings,
            registry,
            stored=store.remote_secrets,
            master_key=lambda: master_key_for(settings)[0],
        )
        pool = HashingPool(
            workers=settings.workers,
            options=HashOptions.for_scan(
                scan_options(settings), also_reference=sends_pdq_hashes(remote), hashers=hashers
            ),
            timeout=settings.decode_timeout,
            video_timeout=settings.video_timeout,
            memory_mb=settings.worker_memory_mb,
            niceness=WORKER_NICENESS,
            on_rebuild=lambda _reason: metrics.pool_rebuilds.labels("uploads").inc(),
        )
        matcher = MatcherService(store.banks, settings.index_path)

        def refused(reason: str) -> None:
            metrics.rejected.labels(reason).inc()

        vault = OnceVault(lambda: open_vault(settings, store, master_key_for(settings)[0]))
        pipeline = Pipeline.configured(
            settings,
            store,
            actor=PIPELINE_ACTOR,
            matcher=matcher,
            policies=lambda: policies_of(matcher.banks),
            remote=remote,
            vault=vault,
            hashing=pool,
        )

        return cls(
            settings=settings,
            store=store,
            pool=pool,
            matcher=matcher,
            authenticator=Authenticator(
                store.tokens,
                owner_disabled=_owner_disabled(store),
                owner_of=store.people.token_owner,
            ),
            admission=Admission(
                settings.workers * settings.queue_per_worker,
                settings.token_concurrency,
                on_refusal=refused,
            ),
            receiving=Receiving(
                settings.receiving_uploads,
                int(settings.receiving_mb * 1024 * 1024),
                on_refusal=refused,
            ),
            lookups=LookupLimiter(
                settings.lookup_rate_per_minute,
                burst=max(settings.lookup_rate_per_minute, settings.lookup_max_batch),
                on_refusal=refused,
            ),
            probes=ProbeGuard(
                radius=settings.lookup_probe_radius,
                budget=settings.lookup_probe_budget,
                window_seconds=settings.lookup_probe_window_seconds,
                memory=settings.lookup_probe_memory,
            ),
            metrics=metrics,
            runs=RunManager(
                settings,
                store,
                matcher,
                pipeline,
                on_rebuild=lambda _reason: metrics.pool_rebuilds.labels("runs").inc(),
                hashers=hashers,
            ),
            registry=registry,
            remote=remote,
            pipeline=pipeline,
            _vault=vault,
            stats=_stats_reader(store),
            tenants=TenantDirectory(store),
            tenant_rates=TenantLimiter(
                burst=settings.lookup_max_batch,
                on_refusal=refused,
                clock=lambda: now().timestamp(),
            ),
            clock=now,
        )

    def vault(self) -> Vault:
        """The evidence vault (opened on first use: it needs the master key)."""
        return self._vault()

    @property
    def endpoints(self) -> tuple[WebhookEndpoint, ...]:
        return endpoints_of(self.settings)

    def master_key(self) -> MasterKey:
        """The key that opens exchange credentials and evidence data keys."""
        return master_key_for(self.settings)[0]

    @property
    def upload_limit(self) -> int:
        return int(self.settings.max_upload_mb * 1024 * 1024)

    @property
    def list_limit(self) -> int:
        return int(self.settings.max_list_mb * 1024 * 1024)

    def close(self) -> None:
        self.runs.stop()
        self.pool.close(wait=False)
        if self.remote is not None:
            # late answers still in flight are recorded before the matchers close
            if not self.remote.settle():
                log.warning(
                    "closing with remote calls still in flight: their files stay not_answered"
                )
            self.remote.close()

    def refresh_metrics(self, metrics: Metrics) -> None:
        metrics.queue_depth.set(self.admission.in_flight)
        metrics.receiving.set(self.receiving.in_flight)
        metrics.pool_ready.set(1 if self.pool.ready else 0)
        if self.matcher.loaded:
            state = self.matcher.state()
            metrics.index_entries.set(state.entries)
            metrics.index_pending.set(state.pending)
            metrics.index_age.set(state.age)
