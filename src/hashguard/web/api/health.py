"""Liveness, readiness and Prometheus metrics (/healthz and /readyz need no token;
/metrics one with the ``stats`` scope, unless ``metrics_public`` opens it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from hashguard.web.deps import scraper, services
from hashguard.web.schemas.health import Health
from hashguard.web.services import Services

router = APIRouter(tags=["health"])

Svc = Annotated[Services, Depends(services)]
#: Ready only while the index has caught up with the store this recently (in refresh intervals).
FRESH_INTERVALS = 5
#: ... and never less than this: a busy machine delays a short refresh by a second or
#: two without the index being stale in any way that matters
FRESH_FLOOR_SECONDS = 10.0


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(svc: Svc) -> JSONResponse:
    """Ready to scan: the store answers, a hashing worker pool can take work, and the
    match index is loaded and fresh."""
    detail: dict[str, object] = {}
    problems = []
    try:
        svc.store.ping()
    except Exception as exc:  # noqa: BLE001 - any store failure means not ready
        problems.append(f"store unreachable: {type(exc).__name__}")
    if svc.ready_error:
        problems.append(svc.ready_error)
    pool = svc.pool.health()
    detail["hashing_pool_rebuilds"] = pool.rebuilds
    if not pool.ready:
        problems.append(f"no hashing worker can take work (being rebuilt): {pool.last_problem}")
    if not svc.matcher.loaded:
        failed = svc.matcher.load_problem
        if svc.ready_error is None:
            problems.append(
                f"match index failed to load (trying again): {failed}"
                if failed
                else "match index loading"
            )
    else:
        state = svc.matcher.state()
        limit = max(FRESH_FLOOR_SECONDS, FRESH_INTERVALS * svc.settings.index_refresh_seconds)
        detail |= {"index_entries": state.entries, "index_age_seconds": round(state.age, 3)}
        if state.age > limit:
            problems.append(f"match index not refreshed for {state.age:.0f} s")
    if problems:
        detail["problems"] = problems
        return JSONResponse(Health(status="not ready", detail=detail).model_dump(), status_code=503)
    return JSONResponse(Health(status="ready", detail=detail).model_dump())


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    dependencies=[Depends(scraper)],
)
def metrics(svc: Svc) -> Response:
    """Prometheus metrics: requests, latency, outcomes, matches, index, queue, refusals,
    statistics rollups. Needs a token with the ``stats`` scope (the series name banks
    and list sources), unless the operator set ``metrics_public``."""
    return Response(svc.metrics.render(svc.refresh_metrics), media_type=CONTENT_TYPE_LATEST)
