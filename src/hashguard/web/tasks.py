"""What a server does for itself in the background: keep its own match index fresh.

Everything else (the outbox, exchange sync, retention, housekeeping) is shared work in
``hashguard.jobs``, which the server runs in-process unless ``--no-background``.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

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
