"""/v1/callbacks/safer: Hive's asynchronous answers for Thorn Safer (bulk scans).

No token: the callback URL's own signature is the credential (``remote.safer_callback``).
Mounted only when a Safer matcher is configured with ``callback_base_url``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from hashguard.remote.callbacks import join_answer
from hashguard.remote.safer import SaferMatcher
from hashguard.remote.safer_callback import CallbackRefused
from hashguard.web.deps import services
from hashguard.web.problems import ProblemError, problem_responses
from hashguard.web.services import Services

router = APIRouter(prefix="/v1/callbacks", tags=["callbacks"])

Svc = Annotated[Services, Depends(services)]
#: a task's answer is a few kilobytes; anything far larger is not one
MAX_BODY = 1 << 20


@router.post(
    "/safer/{service}/{sha256}",
    status_code=204,
    responses=problem_responses(400, 403, 404, 409, 410, 413),
)
async def safer_callback(
    request: Request,
    svc: Svc,
    service: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,39}$")],
    sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
    expires: Annotated[int, Query(ge=0, le=2**40)],
    sig: Annotated[str, Query(pattern=r"^[0-9a-f]{64}$")],
) -> Response:
    """Hive's answer for the file ``sha256``, sent to the signed URL hashguard gave it:
    checked (signature 403, deadline 410), then joined to the scan items that await it
    (409 when none does: a replay)."""
    matcher = next(
        (
            m
            for m in (svc.remote.matchers if svc.remote is not None else ())
            if m.label == service and isinstance(m, SaferMatcher)
        ),
        None,
    )
    if matcher is None:
        raise ProblemError(404, "Not found", f"no Safer matcher named {service!r}")
    body = b""
    async for chunk in request.stream():  # no token guards this route: bound it here
        body += chunk
        if len(body) > MAX_BODY:
            raise ProblemError(413, "Too large", "a callback's body is at most 1 MiB")
    try:
        answer = matcher.check_callback(sha256, expires, sig, body)
        await run_in_threadpool(join_answer, svc.store, svc.pipeline, sha256, answer)
    except CallbackRefused as exc:
        raise ProblemError(exc.status, "Callback refused", str(exc)) from None
    return Response(status_code=204)
