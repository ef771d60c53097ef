"""POST /v1/scan: hash an upload in an isolated worker and match it, before it is published."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from hashguard.actions.outbox import plan_for_decision
from hashguard.audit import token_actor
from hashguard.domain.cases import CaseSource, ContentRef, SourceKind
from hashguard.domain.scans import Outcome
from hashguard.domain.tokens import Scope, Token
from hashguard.evidence.capture import evidence_context, keeps_evidence
from hashguard.hashing.isolate import PoolStopped
from hashguard.matching.service import NotLoaded
from hashguard.review.cases import open_from_result, should_open
from hashguard.review.intake import audit_decision
from hashguard.scan.scanner import classify, policies_of
from hashguard.web.deps import require, services
from hashguard.web.problems import ProblemError, problem_responses, request_id_of
from hashguard.web.schemas import (
    NO_NUL,
    ContentMeta,
    Decision,
    MatchOut,
    RemoteOut,
    ScanOut,
    SignalsOut,
)
from hashguard.web.services import Services
from hashguard.web.uploads import read_upload

router = APIRouter(prefix="/v1", tags=["scan"])

_UPLOAD_BODY = {
    "requestBody": {
        # an empty body is scanned like any empty file: outcome unsupported, with 200
        "required": False,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        # multipart fields are text whatever they hold: no type to violate
                        "content_id": {"description": "your id of the content (text)"},
                        "uploader_id": {"description": "your id of the uploader (text)"},
                        "url": {"description": "where the content is or would be (text)"},
                        "uploader_ip": {"description": "the uploader's IP address (text)"},
                    },
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/scan",
    response_model=ScanOut,
    openapi_extra=_UPLOAD_BODY,
    responses=problem_responses(429, 503),
    summary="Scan one upload",
)
async def scan(
    request: Request,
    token: Annotated[Token, Depends(require(Scope.SCAN))],
    svc: Annotated[Services, Depends(services)],
    content_id: Annotated[str | None, Query(max_length=500, pattern=NO_NUL)] = None,
    uploader_id: Annotated[str | None, Query(max_length=500, pattern=NO_NUL)] = None,
    url: Annotated[str | None, Query(max_length=4000, pattern=NO_NUL)] = None,
    uploader_ip: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
) -> ScanOut:
    """Hash the upload (the raw body, or the ``file`` part of multipart/form-data) with
    the vetted hashers in an isolated worker, match it against every enabled bank, and
    answer with its one typed outcome. Nothing of a non-matching upload is stored; a
    matched upload that the policy acts on or sends to review is kept, encrypted, in the
    evidence vault (``evidence_id``).

    Decoding problems are outcomes, answered with 200 (``undecodable``,
    ``unsupported``); 503 means the server is at capacity right now (retry after
    ``Retry-After``), never that the upload was checked.
    """
    upload = await read_upload(request)
    try:
        output = await asyncio.wrap_future(svc.pool.submit_data(upload.data))
        matches = (
            await run_in_threadpool(svc.matcher.match, output.signals) if output.signals else ()
        )
    except (PoolStopped, NotLoaded) as exc:
        raise ProblemError(503, "Not ready", str(exc), {"Retry-After": "5"}) from None
    remote = (
        await run_in_threadpool(svc.remote.match, upload.data, output.signals)
        if svc.remote is not None and output.signals is not None
        else ()
    )
    # the policies are read only when something matched (rarely: no lock wait otherwise)
    policies = policies_of(svc.matcher.banks) if matches else None
    result = classify("upload", output, matches, remote, policies=policies)
    svc.metrics.outcomes.labels(str(result.outcome)).inc()
    for match in result.matches:
        if match.effective:
            svc.metrics.matches.labels(match.bank, str(match.algorithm)).inc()
    meta = ContentMeta(
        content_id=upload.fields.get("content_id", content_id),
        uploader_id=upload.fields.get("uploader_id", uploader_id),
        url=upload.fields.get("url", url),
        uploader_ip=upload.fields.get("uploader_ip", uploader_ip),
    )
    evidence_id = None
    if keeps_evidence(result):
        context = evidence_context(result, request_id=request_id_of(request), **meta.model_dump())
        item = await run_in_threadpool(
            partial(
                svc.vault().put,
                upload.data,
                context,
                jurisdiction=svc.settings.evidence_jurisdiction,
                actor=token_actor(token),
            )
        )
        evidence_id = item.id
    source = CaseSource(kind=SourceKind.UPLOAD, ref=request_id_of(request) or "-")
    if result.outcome is Outcome.MATCHED:
        await run_in_threadpool(
            partial(audit_decision, svc.store, result, source, actor=token_actor(token))
        )
    opened = (
        await run_in_threadpool(
            partial(
                open_from_result,
                svc.store,
                result,
                source,
                actor=token_actor(token),
                content=ContentRef(
                    content_id=meta.content_id, uploader_id=meta.uploader_id, url=meta.url
                ),
                evidence_id=evidence_id,
            )
        )
        if should_open(result)
        else None
    )
    planned = plan_for_decision(
        result,
        endpoints=svc.endpoints,
        quarantine_local=False,  # an upload is the platform's to hold back, not a file here
        key=f"upload:{result.signals.sha256 if result.signals else ''}:{request_id_of(request)}",
    )
    for action in planned:
        await run_in_threadpool(svc.store.actions.enqueue, action)
    return ScanOut(
        case_id=opened[0].id if opened else None,
        evidence_id=evidence_id,
        request_id=request_id_of(request),
        outcome=result.outcome,
        reason=result.reason,
        decision=Decision.of(result.decision, matched=result.outcome is Outcome.MATCHED),
        content=meta,
        signals=SignalsOut.of(result.signals) if result.signals else None,
        matches=[MatchOut.of(m) for m in result.matches],
        remote=[RemoteOut.of(r) for r in result.remote],
    )
