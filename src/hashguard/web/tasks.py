"""What a server does in the background: keep its match index fresh, sync exchanges,
forget ended sign-ins."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from starlette.concurrency import run_in_threadpool

from hashguard.actions.dispatcher import dispatcher_from_settings
from hashguard.banks.exchanges.sync import build_source, sync_exchange
from hashguard.keys import MasterKey
from hashguard.people.oidc import PENDING_SECONDS
from hashguard.settings import Settings
from hashguard.store.people import PeopleStore
from hashguard.web.services import Services

log = logging.getLogger("hashguard.web")


async def keep_index_fresh(svc: Services) -> None:
    """Load the match index, then catch up with the store every refresh interval."""
    try:
        await run_in_threadpool(svc.matcher.load)
    except Exception as exc:
        svc.ready_error = f"match index failed to load: {exc}"
        log.exception("match index failed to load")
        return
    while True:
        await asyncio.sleep(svc.settings.index_refresh_seconds)
        try:
            await run_in_threadpool(svc.matcher.refresh)
        except Exception:  # the store may be briefly unreachable: readiness shows the age
            log.exception("match index refresh failed")


def _sync_enabled_exchanges(svc: Services) -> None:
    key: MasterKey | None = None
    for exchange in svc.store.exchanges.list():
        if not exchange.enabled:
            continue
        try:
            if exchange.credential_names and key is None:
                key = svc.master_key()
            source = build_source(svc.registry, svc.store, key, exchange)
        except Exception as exc:  # noqa: BLE001 - one exchange's configuration, not the loop
            log.error("exchange %s cannot sync: %s", exchange.name, exc)  # noqa: TRY400
            svc.metrics.exchange_syncs.labels(exchange.name, "error").inc()
            continue
        report = sync_exchange(svc.store, exchange, source)
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
        svc.metrics.exchange_syncs.labels(exchange.name, "ok" if report.ok else "error").inc()


async def sync_exchanges_periodically(svc: Services) -> None:
    """Every ``exchange_sync_minutes`` (+-10 % jitter, so servers sharing a store spread
    out; the sync lease lets only one of them sync an exchange at a time)."""
    interval = svc.settings.exchange_sync_minutes * 60
    while True:
        await asyncio.sleep(interval * random.uniform(0.9, 1.1))
        try:
            await run_in_threadpool(_sync_enabled_exchanges, svc)
        except Exception:  # the store may be briefly unreachable: try again next time
            log.exception("exchange sync failed")


#: how often ended sessions, stale OpenID Connect sign-ins and old failures are forgotten
HOUSEKEEPING_SECONDS = 3600.0


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


async def housekeeping(svc: Services) -> None:
    while True:
        try:
            await run_in_threadpool(
                forget_ended_sign_ins, svc.store.people, svc.settings, datetime.now(UTC)
            )
        except Exception:  # the store may be briefly unreachable: try again next time
            log.exception("forgetting ended sign-ins failed")
        await asyncio.sleep(HOUSEKEEPING_SECONDS)


@contextlib.contextmanager
def dispatching(svc: Services) -> Iterator[None]:
    """The outbox dispatcher in a thread of the server while it runs, when there is
    anything to deliver to (webhook endpoints, or quarantine for scan runs). Several
    servers may each run one: actions are leased, so each is delivered by one of them."""
    if not (svc.settings.webhooks or svc.settings.quarantine_local):
        yield
        return
    dispatcher, webhooks = dispatcher_from_settings(svc.settings, svc.store.actions)
    stop = threading.Event()
    thread = threading.Thread(
        target=dispatcher.run_forever,
        args=(stop,),
        kwargs={"poll_seconds": svc.settings.actions_poll_seconds},
        name="outbox-dispatcher",
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
        webhooks.close()
