"""POST /v1/lookup: match hashes the caller computed, rate-limited per token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from hashguard.banks.formats import InvalidRow, normalise_hash
from hashguard.domain.signals import Algorithm
from hashguard.domain.tokens import Scope, Token
from hashguard.matching.service import NotLoaded
from hashguard.web.deps import require, services
from hashguard.web.problems import ProblemError, problem_responses
from hashguard.web.schemas import LookupIn, LookupOut, LookupResult, MatchOut
from hashguard.web.services import Services

router = APIRouter(prefix="/v1", tags=["lookup"])


@router.post(
    "/lookup",
    response_model=LookupOut,
    responses=problem_responses(429, 503),
    summary="Look up hashes",
)
def lookup(
    body: LookupIn,
    token: Annotated[Token, Depends(require(Scope.LOOKUP))],
    svc: Annotated[Services, Depends(services)],
) -> LookupOut:
    """Match up to ``lookup_max_batch`` (default 1,000) MD5, SHA-1, SHA-256 or PDQ hashes
    against every enabled bank. Each hash counts against the token's per-minute budget,
    so a list cannot be enumerated by brute force. An invalid hash gets ``valid: false``
    with the reason; it does not fail the others."""
    if len(body.hashes) > svc.settings.lookup_max_batch:
        svc.metrics.rejected.labels("too_large").inc()
        raise ProblemError(
            413, "Request body too large", f"at most {svc.settings.lookup_max_batch} hashes a call"
        )
    svc.lookups.take(token.id, len(body.hashes))
    checked: list[tuple[Algorithm, str] | str] = []
    for item in body.hashes:
        try:
            checked.append((item.algorithm, normalise_hash(item.algorithm, item.hash)))
        except InvalidRow as exc:
            checked.append(str(exc))
    valid = [query for query in checked if not isinstance(query, str)]
    try:
        found = iter(svc.matcher.lookup(valid))
    except NotLoaded as exc:
        raise ProblemError(503, "Not ready", str(exc), {"Retry-After": "5"}) from None
    results = []
    for item, query in zip(body.hashes, checked, strict=True):
        if isinstance(query, str):
            results.append(
                LookupResult(
                    algorithm=item.algorithm, hash=item.hash, valid=False, reason=query, matches=[]
                )
            )
        else:
            results.append(
                LookupResult(
                    algorithm=item.algorithm,
                    hash=query[1],
                    valid=True,
                    matches=[MatchOut.of(m) for m in next(found)],
                )
            )
    return LookupOut(results=results)
