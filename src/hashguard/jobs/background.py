"""Background work in threads of one process: the outbox dispatcher and the leased jobs.

``hashguard worker`` runs this and nothing else; ``hashguard serve`` runs it next to the
API (unless ``--no-background``), so a one-machine set-up stays one command. Both wire
it here, once. The dispatcher needs no job lease: it leases each outbox entry it takes
(``ActionStore.claim_due``), so any number of dispatchers share one outbox.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from types import TracebackType

from hashguard.actions.dispatcher import Dispatcher, dispatcher_from_settings
from hashguard.actions.webhooks import WebhookDeliverer
from hashguard.jobs.builtin import SyncObserver, builtin_jobs, existing_master_key
from hashguard.jobs.runner import Clock, JobRunner, holder_id, wall_clock
from hashguard.plugins import Registry
from hashguard.settings import Settings
from hashguard.store import Store

log = logging.getLogger("hashguard.jobs")

#: how long stopping waits for a thread (a job finishing its current step)
JOIN_SECONDS = 30.0


class Background:
    """The dispatcher (when webhooks, quarantine or an exchange are configured) and the job runner,
    each in a thread; ``start`` them, ``stop`` them (or use ``with``)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        registry: Registry,
        *,
        holder: str | None = None,
        clock: Clock = wall_clock,
        on_sync: SyncObserver | None = None,
    ) -> None:
        self.holder = holder or holder_id()
        self.runner = JobRunner(
            store.leases,
            builtin_jobs(settings, store, registry, on_sync=on_sync),
            holder=self.holder,
            ttl=timedelta(seconds=settings.jobs_lease_seconds),
            clock=clock,
        )
        self._dispatcher: Dispatcher | None = None
        self._webhooks: WebhookDeliverer | None = None
        self._poll_seconds = settings.actions_poll_seconds
        # an exchange may have feedback switched on at any time: its feedback needs one
        if (
            settings.webhooks
            or settings.quarantine_local
            or settings.quarantine_objects
            or store.exchanges.list()
        ):
            self._dispatcher, self._webhooks = dispatcher_from_settings(
                settings,
                store,
                registry,
                key=lambda: existing_master_key(settings),
                owner=self.holder,
            )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def dispatching(self) -> bool:
        return self._dispatcher is not None

    def describe(self) -> str:
        jobs = ", ".join(job.name for job in self.runner.jobs)
        outbox = "the outbox dispatcher, " if self.dispatching else ""
        return f"{outbox}jobs: {jobs} (as {self.holder})"

    def start(self) -> None:
        if self._dispatcher is not None:
            self._threads.append(
                threading.Thread(
                    target=self._dispatcher.run_forever,
                    args=(self._stop,),
                    kwargs={"poll_seconds": self._poll_seconds},
                    name="outbox-dispatcher",
                    daemon=True,
                )
            )
        self._threads.append(
            threading.Thread(
                target=self.runner.run_forever, args=(self._stop,), name="jobs", daemon=True
            )
        )
        for thread in self._threads:
            thread.start()

    def stop(self) -> bool:
        """Stop both threads: a delivery or a job step under way finishes, held leases
        are released. False when a thread was still busy after ``JOIN_SECONDS`` (its
        leases then run out on their own)."""
        self._stop.set()
        stopped = True
        for thread in self._threads:
            thread.join(timeout=JOIN_SECONDS)
            if thread.is_alive():
                log.warning("%s did not stop within %.0f s", thread.name, JOIN_SECONDS)
                stopped = False
        if self._webhooks is not None and stopped:
            self._webhooks.close()
        return stopped

    def __enter__(self) -> Background:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
