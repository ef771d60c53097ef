"""The resolver as the settings configure it, for the ``notices`` job and ``hashguard
notices resolve``: the platform callback, the banks' index, a hashing pool and the
one pipeline (remote matchers, evidence vault and webhooks as configured)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from hashguard.domain.backoff import Backoff
from hashguard.evidence import open_vault
from hashguard.hashing.hasher import enabled_hashers
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions
from hashguard.keys import MasterKey
from hashguard.matching.matcher import load_or_build
from hashguard.notices.callback import PlatformCallback
from hashguard.notices.resolve import RESOLVER_ACTOR, Resolver
from hashguard.plugins import Registry
from hashguard.remote.service import remote_matching, sends_pdq_hashes
from hashguard.scan.classify import policies_of
from hashguard.scan.pipeline import OnceVault, Pipeline
from hashguard.scan.sources import scan_options
from hashguard.settings import Settings
from hashguard.store import Store


@contextmanager
def configured_resolver(
    settings: Settings,
    store: Store,
    registry: Registry,
    master_key: Callable[[], MasterKey],
    *,
    actor: str = RESOLVER_ACTOR,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    workers: int = 1,
) -> Iterator[Resolver]:
    """A resolver with its own hashing pool (closed at the end of the block)."""
    matcher = load_or_build(store.banks, settings.index_path)
    remote = remote_matching(settings, registry, stored=store.remote_secrets, master_key=master_key)
    try:
        with HashingPool(
            workers=workers,
            options=HashOptions.for_scan(
                scan_options(settings),
                also_reference=sends_pdq_hashes(remote),
                hashers=enabled_hashers(registry),
            ),
            timeout=settings.decode_timeout,
            video_timeout=settings.video_timeout,
            memory_mb=settings.worker_memory_mb,
        ) as pool:
            pipeline = Pipeline.configured(
                settings,
                store,
                actor=actor,
                matcher=matcher,
                policies=lambda: policies_of(matcher.banks),
                remote=remote,
                vault=OnceVault(lambda: open_vault(settings, store, master_key())),
                hashing=pool,
            )
            yield Resolver(
                store=store,
                pipeline=pipeline,
                callback=PlatformCallback.configured(settings),
                backoff=Backoff(
                    first=timedelta(seconds=settings.notices_retry_base_seconds),
                    longest=timedelta(seconds=settings.notices_retry_max_seconds),
                ),
                actor=actor,
                clock=clock,
            )
    finally:
        if remote is not None:
            remote.settle()
            remote.close()
