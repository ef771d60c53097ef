"""``hashguard worker``: the background jobs as a process of their own."""

from __future__ import annotations

import logging
import signal
import threading

import typer

from hashguard.cli.context import err, registry_of, settings_of, store_of
from hashguard.jobs import Background


def worker(ctx: typer.Context) -> None:
    """Run the background jobs until SIGTERM or Ctrl-C: the outbox dispatcher (when
    webhooks or quarantine are configured), exchange sync, evidence retention and
    housekeeping.

    Run any number of workers (and servers) on one store: each job runs in one process
    at a time under a lease, and a killed worker's job is taken over once its lease runs
    out (HASHGUARD_JOBS_LEASE_SECONDS). Start servers with `serve --no-background` to
    leave the jobs to workers. On SIGTERM a worker finishes the delivery or job step
    under way, releases its leases and exits 0.
    """
    settings = settings_of(ctx)
    registry = registry_of(ctx)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("hashguard").setLevel(logging.INFO)  # not httpx's: URLs hold secrets
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with store_of(ctx) as store:
        background = Background(settings, store, registry)
        err.print(f"hashguard worker: {background.describe()}", highlight=False, soft_wrap=True)
        background.start()
        try:
            while not stop.wait(1.0):
                pass
        finally:
            stopped = background.stop()
    if not stopped:
        err.print("hashguard worker: a job did not stop in time; its lease runs out")
        raise typer.Exit(1)
    err.print("hashguard worker: stopped")
