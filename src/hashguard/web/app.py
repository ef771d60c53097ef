"""The FastAPI application: built from explicit settings, with its services in app.state."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from hashguard import __version__
from hashguard.jobs import Background
from hashguard.remote.safer_callback import takes_safer_callbacks
from hashguard.settings import Settings
from hashguard.store import open_store
from hashguard.web import openapi, problems, tasks, ui
from hashguard.web.api import (
    appeals,
    banks,
    callbacks,
    cases,
    health,
    lookup,
    notices,
    runs,
    scan,
    stats,
    tenant,
    whoami,
)
from hashguard.web.gate import GateMiddleware
from hashguard.web.hma import curation as hma_curation
from hashguard.web.hma import exchanges as hma_exchanges
from hashguard.web.hma import router as hma_router
from hashguard.web.hma.paths import SecretPathMiddleware
from hashguard.web.metrics import Metrics, MetricsMiddleware
from hashguard.web.services import Services
from hashguard.web.ui import notice as ui_notice


def create_app(
    settings: Settings,
    *,
    background: bool = True,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """A new app; nothing is opened until it starts (uvicorn runs its lifespan). With
    ``background``, it also runs the background jobs (``hashguard.jobs``) while it
    serves; without, ``hashguard worker`` processes do. ``clock``: what time it is for
    tenants' daily quotas and rate limits (default: the wall clock)."""
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(settings.resolved_database_url)
        svc = Services.start(settings, store, metrics, clock=clock)
        app.state.services = svc
        metrics.watch_stats(lambda: svc.stats)
        # Everything made so far lives as long as the server: a full collection must
        # not walk it (a 70 ms pause stalled every request, refusals included).
        gc.collect()
        gc.freeze()
        index = asyncio.create_task(tasks.keep_index_fresh(svc))
        jobs = (
            Background(
                settings,
                store,
                svc.registry,
                on_sync=lambda name, ok: metrics.exchange_syncs.labels(
                    name, "ok" if ok else "error"
                ).inc(),
            )
            if background
            else None
        )
        try:
            if jobs is not None:
                jobs.start()
            yield
        finally:
            if jobs is not None:
                await run_in_threadpool(jobs.stop)
            index.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await index
            await run_in_threadpool(svc.close)
            store.close()

    app = FastAPI(
        title="hashguard",
        version=__version__,
        summary="Find known CSAM on your own service with vetted hashes and lists.",
        lifespan=lifespan,
        # no automatic trailing-slash redirects: Starlette builds their target from the
        # Host header, an open redirect behind a proxy that passes it through
        redirect_slashes=False,
    )
    for router in (
        scan.router,
        lookup.router,
        tenant.router,
        banks.router,
        cases.router,
        runs.router,
        notices.router,
        whoami.router,
        appeals.router,
        stats.router,
        health.router,
    ):
        app.include_router(router)
    if takes_safer_callbacks(settings.remote):
        app.include_router(callbacks.router)
    if settings.hma_compat:
        app.include_router(hma_router.router)
        app.include_router(hma_curation.router)
        app.include_router(hma_exchanges.router)
    app.include_router(ui.router)
    app.include_router(ui_notice.router)
    app.mount("/ui/static", StaticFiles(directory=ui.STATIC, check_dir=True), name="ui-static")
    # inside the request id's
    app.add_middleware(GateMiddleware, metrics=metrics, metrics_public=settings.metrics_public)
    if settings.hma_compat and settings.hma_path_secrets:  # outside the gate: sets the token
        app.add_middleware(SecretPathMiddleware, secrets=settings.hma_path_secrets)
    problems.install(app)
    ui.pages.install(app)  # after problems: UI pages for /ui, problems elsewhere
    app.openapi = lambda: openapi.document(  # type: ignore[method-assign]
        app, metrics_public=settings.metrics_public
    )

    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
