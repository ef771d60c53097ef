"""/v1/runs: scan runs over server-side folders (under the configured scan roots)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from hashguard.domain.tokens import Scope, Token
from hashguard.scan.objectruns import object_run_args
from hashguard.store.scans import UnknownRun
from hashguard.web.deps import require, services
from hashguard.web.problems import ProblemError, problem_responses
from hashguard.web.schemas.runs import RunIn, RunOut
from hashguard.web.services import Services

router = APIRouter(prefix="/v1/runs", tags=["runs"])

Admin = Annotated[Token, Depends(require(Scope.ADMIN))]
Svc = Annotated[Services, Depends(services)]


@router.post(
    "", response_model=RunOut, status_code=202, responses=problem_responses(403, 409, 422, 503)
)
def start_run(body: RunIn, _: Admin, svc: Svc) -> RunOut:
    """Start (or resume) a scan of absolute paths under the server's scan roots, or of
    s3://bucket/prefix addresses inside its ``scan_buckets``; poll ``GET /v1/runs/{id}``
    for progress. Outcomes are as in ``hashguard scan``."""
    try:
        objects = object_run_args(
            body.paths,
            endpoint_url=svc.settings.s3_endpoint_url
            if any(p.startswith("s3://") for p in body.paths)
            else None,
            inventory=body.inventory,
            all_versions=body.versions == "all",
            max_size=body.max_size,
            extensions=body.extensions,
            content_types=body.content_types,
            rate=body.rate,
        )
    except ValueError as exc:  # a well-formed request this server does not scan
        raise ProblemError(403, "Not allowed", str(exc)) from None
    run = svc.runs.start(body.paths, dihedral=body.dihedral, rescan=body.rescan, objects=objects)
    return RunOut.of(run, active=svc.runs.active(run.id))


@router.get("", response_model=list[RunOut])
def list_runs(_: Admin, svc: Svc, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[RunOut]:
    return [RunOut.of(r, active=svc.runs.active(r.id)) for r in svc.store.scans.list_runs(limit)]


@router.get("/{run_id}", response_model=RunOut, responses=problem_responses(404))
def show_run(run_id: Annotated[int, Path(ge=1, le=2**62)], _: Admin, svc: Svc) -> RunOut:
    try:
        run = svc.store.scans.get(run_id)
    except UnknownRun as exc:
        raise ProblemError(404, "Not found", str(exc)) from None
    return RunOut.of(run, active=svc.runs.active(run.id))
