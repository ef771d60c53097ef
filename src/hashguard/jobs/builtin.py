"""The built-in background jobs: exchange sync, evidence retention, housekeeping.

Each is a ``Job`` whose name is its lease's name (persisted: never renamed). They are
idempotent, so a job taken over from a killed process and run again changes nothing
twice: a sync resumes from its checkpoint, retention destroys only what is still due,
housekeeping deletes what is already past.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from hashguard.banks.exchanges.sync import build_source, sync_exchange
from hashguard.evidence import open_vault, run_retention
from hashguard.evidence.retention import ORPHAN_GRACE
from hashguard.jobs.runner import Job, JobContext
from hashguard.keys import MasterKey
from hashguard.people.oidc import PENDING_SECONDS
from hashguard.plugins import Registry
from hashguard.settings import Settings
from hashguard.store import Store
from hashguard.store.people import PeopleStore

log = logging.getLogger("hashguard.jobs")

EXCHANGE_SYNC = "exchange-sync"
RETENTION = "retention"
HOUSEKEEPING = "housekeeping"
#: how often ended sessions, stale OpenID Connect sign-ins and old failures are forgotten
HOUSEKEEPING_EVERY = timedelta(hours=1)

#: told of every exchange sync's outcome: (exchange, ok) (the server counts them)
SyncObserver = Callable[[str, bool], None]


def existing_master_key(settings: Settings) -> MasterKey | None:
    """The master key if this installation has one here; never creates one (a worker on
    another machine must not make up a key of its own: nothing it sealed would open
    elsewhere)."""
    configured = settings.master_key is not None or settings.master_key_file is not None
    if not configured and not settings.default_master_key_file.exists():
        return None
    key, _ = MasterKey.load(
        value=settings.master_key.get_secret_value() if settings.master_key else None,
        file=settings.master_key_file or settings.default_master_key_file,
        default_file=settings.default_master_key_file,
    )
    return key


def sync_enabled_exchanges(
    store: Store,
    registry: Registry,
    settings: Settings,
    context: JobContext,
    *,
    on_sync: SyncObserver | None = None,
) -> None:
    """Sync every enabled exchange once; one exchange's failure is logged and counted,
    not the job's."""
    key: MasterKey | None = None
    for exchange in store.exchanges.list():
        if not exchange.enabled:
            continue
        context.check()
        try:
            if exchange.credential_names and key is None:
                key = existing_master_key(settings)
            source = build_source(registry, store, key, exchange)
        except Exception as exc:  # noqa: BLE001 - one exchange's configuration, not the job
            log.error("exchange %s cannot sync: %s", exchange.name, exc)  # noqa: TRY400
            if on_sync is not None:
                on_sync(exchange.name, False)
            continue
        report = sync_exchange(store, exchange, source)
        if report.ok:
            log.info(
                "exchange %s: +%d -%d (%d skipped)",
                exchange.name,
                report.upserted,
                report.removed,
                report.skipped,
            )
        else:
            log.warning("exchange %s: %s", exchange.name, report.error)
        if on_sync is not None:
            on_sync(exchange.name, report.ok)


def evidence_retention(settings: Settings, store: Store, now: datetime) -> None:
    """The retention job (``hashguard evidence retention run``): destroy evidence whose
    retention ended (never under a legal hold) and sweep orphans."""
    key = existing_master_key(settings)
    if key is None:
        if store.evidence.expired(now) or store.evidence.orphaned(now - ORPHAN_GRACE):
            # not done here: another process with the key takes the job over
            raise RuntimeError("evidence is due for destruction but there is no master key here")
        return  # no key, so nothing was ever sealed here: nothing to destroy
    report = run_retention(open_vault(settings, store, key), now, store=store.evidence)
    log.info(
        "retention: %d destroyed, %d held, %d failed, %d orphan files removed",
        len(report.destroyed),
        len(report.held),
        len(report.failed),
        report.orphans_removed,
    )


def forget_ended_sign_ins(
    people: PeopleStore, settings: Settings, now: datetime
) -> tuple[int, int, int]:
    """Delete sessions past their absolute timeout, sign-ins never completed, and failed
    sign-ins older than the lockout window; the counts of each."""
    return (
        people.delete_sessions_before(now - timedelta(hours=settings.ui_session_absolute_hours)),
        people.delete_oidc_pending_before(now - timedelta(seconds=PENDING_SECONDS)),
        people.delete_login_failures_before(
            now - timedelta(minutes=settings.login_lockout_minutes)
        ),
    )


def intervals(settings: Settings) -> dict[str, timedelta]:
    """The jobs ``settings`` switch on (an interval of 0 switches one off), by name, and
    how often each runs."""
    every = {HOUSEKEEPING: HOUSEKEEPING_EVERY}
    if settings.exchange_sync_minutes > 0:
        every[EXCHANGE_SYNC] = timedelta(minutes=settings.exchange_sync_minutes)
    if settings.retention_run_hours > 0:
        every[RETENTION] = timedelta(hours=settings.retention_run_hours)
    return every


def builtin_jobs(
    settings: Settings, store: Store, registry: Registry, *, on_sync: SyncObserver | None = None
) -> list[Job]:
    """The jobs ``settings`` switch on."""
    runs: dict[str, Callable[[JobContext], None]] = {
        HOUSEKEEPING: lambda ctx: log.debug(
            "forgot %d sessions, %d sign-ins, %d failures",
            *forget_ended_sign_ins(store.people, settings, ctx.now()),
        ),
        EXCHANGE_SYNC: lambda ctx: sync_enabled_exchanges(
            store, registry, settings, ctx, on_sync=on_sync
        ),
        RETENTION: lambda ctx: evidence_retention(settings, store, ctx.now()),
    }
    return [
        Job(name=name, every=every, run=runs[name]) for name, every in intervals(settings).items()
    ]
