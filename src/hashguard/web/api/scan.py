"""POST /v1/scan: hash an upload in an isolated worker and match it, before it is published."""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from hashguard.audit import token_actor
from hashguard.domain.cases import ContentRef
from hashguard.domain.scans import Outcome
from hashguard.domain.tokens import Scope, Token
from hashguard.hashing.isolate import PoolStopped
from hashguard.matching.service import NotLoaded
from hashguard.scan.pipeline import Committed
from hashguard.scan.sources import Upload
from hashguard.web.deps import require, services
from hashguard.web.problems import ProblemError, problem_responses, request_id_of
from hashguard.web.schemas.fields import NO_NUL
from hashguard.web.schemas.results import DecisionOut, MatchOut, RemoteOut, SignalsOut
from hashguard.web.schemas.scan import ContentMeta, ScanOut
from hashguard.web.services import Services
from hashguard.web.uploads import read_upload

log = logging.getLogger("hashguard.web")

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
    ``unsupported``); 503 means the server is at capacity right now, or that the
    outcome could not be recorded (nothing of it was kept): retry after
    ``Retry-After``. A 503 never means that the upload was checked.

    A matched upload's consequences (evidence, audit events, its case, its actions)
    are recorded in one transaction before the answer: a 200 with ``matched`` means
    they are all kept.
    """
    upload = await read_upload(request)
    meta = ContentMeta(
        content_id=upload.fields.get("content_id", content_id),
        uploader_id=upload.fields.get("uploader_id", uploader_id),
        url=upload.fields.get("url", url),
        uploader_ip=upload.fields.get("uploader_ip", uploader_ip),
    )
    source = Upload(
        data=upload.data,
        request_id=request_id_of(request),
        content_ref=ContentRef(
            content_id=meta.content_id, uploader_id=meta.uploader_id, url=meta.url
        ),
        uploader_ip=meta.uploader_ip,
    )
    done = await run_upload(svc, token, source)
    result = done.result
    svc.metrics.outcomes.labels(str(result.outcome)).inc()
    for match in result.matches:
        if match.effective:
            svc.metrics.matches.labels(match.bank, str(match.algorithm)).inc()
    return ScanOut(
        case_id=done.case.id if done.case else None,
        evidence_id=done.evidence_id,
        request_id=request_id_of(request),
        outcome=result.outcome,
        reason=result.reason,
        decision=DecisionOut.of(result.decision, matched=result.outcome is Outcome.MATCHED),
        content=meta,
        signals=SignalsOut.of(result.signals) if result.signals else None,
        matches=[MatchOut.of(m) for m in result.matches],
        remote=[RemoteOut.of(r) for r in result.remote],
    )


async def run_upload(svc: Services, token: Token, source: Upload) -> Committed:
    """One upload through the one pipeline as ``token``: hashed in the pool, matched,
    and its consequences recorded. Raises a 503 ``ProblemError`` when it was not
    checked or not recorded (fail closed). /v1/scan and HMA's ``POST /m/lookup`` call it."""
    pipeline = svc.pipeline.acting_as(token_actor(token))
    received_at = pipeline.clock()
    try:
        output = await asyncio.wrap_future(svc.pool.submit_data(source.data))
        output, matches = await run_in_threadpool(pipeline.match, output, source)
    except (PoolStopped, NotLoaded) as exc:
        raise ProblemError(503, "Not ready", str(exc), {"Retry-After": "5"}) from None
    except Exception:
        # e.g. the store did not answer while the matches were described: the upload was
        # not checked, and an answer must never let it pass as checked. Fail closed.
        log.exception("an upload could not be matched; answered 503")
        raise ProblemError(
            503,
            "Not checked",
            "the upload could not be matched right now: try again",
            {"Retry-After": "5"},
        ) from None
    try:
        done = await run_in_threadpool(
            partial(pipeline.process, received_at=received_at), "upload", output, matches, source
        )
    except Exception:
        # Whatever failed after matching (the store, the vault, a value the database
        # refuses) rolled the whole item back: nothing of it is recorded, so the answer
        # must not look like a checked upload. Fail closed; the caller retries.
        log.exception("an upload could not be recorded after matching; answered 503")
        raise ProblemError(
            503,
            "Not recorded",
            "the upload was hashed but its outcome could not be recorded; nothing of it "
            "was kept: try again",
            {"Retry-After": "5"},
        ) from None
    return done
