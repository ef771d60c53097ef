"""POST /v1/lookup: match hashes the caller computed, rate-limited and watched for probing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends

from hashguard.audit import record, token_actor
from hashguard.banks.formats import MAX_VPDQ_FRAMES, InvalidRow, normalise_hash, parse_signal
from hashguard.domain.audit import AuditAction
from hashguard.domain.banks import Bank
from hashguard.domain.matches import Match
from hashguard.domain.signals import Algorithm
from hashguard.domain.tokens import Scope, Token
from hashguard.domain.video import frames_of_signal, signal_digest, vpdq_signal
from hashguard.matching.service import NotLoaded
from hashguard.web.deps import require, services
from hashguard.web.probing import ProbeVerdict
from hashguard.web.problems import ProblemError, problem_responses
from hashguard.web.schemas.lookup import (
    LookupIn,
    LookupItem,
    LookupMatchOut,
    LookupOut,
    LookupResult,
)
from hashguard.web.services import Services
from hashguard.web.tenancy import Charged, admit

log = logging.getLogger(__name__)
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
    """Match up to ``lookup_max_batch`` (default 1,000) MD5, SHA-1, SHA-256 or PDQ hashes,
    or videos' vPDQ frames (``vpdq``: one video a hash, matched against the listed videos
    with each bank's vPDQ thresholds), against every enabled bank. Each match names its
    bank's list source and version, and ``index_version`` the list version the whole
    answer came from. Each hash counts against the token's per-minute budget, so a list
    cannot be enumerated by brute force. An invalid hash gets ``valid: false`` with the
    reason; it does not fail the others.

    A PDQ or vPDQ match says which entry matched, not how far it is (``distance`` and a
    vPDQ match's percentages null) unless the server trusts the token with distances.
    PDQ lookups close to the token's own recent matched ones (what reading a listed hash
    bit by bit takes), and vPDQ lookups with a frame close to them, have a small budget;
    a call over it is refused whole with 429 and the probing is audited.

    A token of a tenant of the hash check service also passes its tenant's rate limit,
    probing budget and daily quota (distinct valid hashes per UTC day): a call over the
    quota is refused whole with 429 and a ``Retry-After`` to the next UTC day."""
    return _lookup(body, token, svc)


def looked_up(
    body: LookupIn, token: Token, svc: Services
) -> tuple[list[tuple[Algorithm, str] | str], int | None, Sequence[Bank], list[tuple[Match, ...]]]:
    """A lookup through every guard of /v1/lookup (batch size, rate limit, tenant quota,
    probing budget, audit), before it is rendered: each hash normalised (or why it is
    invalid), the index version, the banks and the matches of each valid hash. Raises
    ``ProblemError`` for a refused or unanswered call. The HMA routes use it too."""
    settings = svc.settings
    cost = _cost(body)
    if len(body.hashes) > settings.lookup_max_batch or cost > max(
        settings.lookup_max_batch, MAX_VPDQ_FRAMES
    ):
        svc.metrics.rejected.labels("too_large").inc()
        raise ProblemError(
            413,
            "Request body too large",
            f"at most {settings.lookup_max_batch} hashes a call, and "
            f"{max(settings.lookup_max_batch, MAX_VPDQ_FRAMES)} with every vPDQ frame counted",
        )
    # a vPDQ frame is one index search, as a hash is: a call is charged its frames, up to
    # one full batch (so that a single long video can pass; it takes a batch's share)
    charge = min(cost, settings.lookup_max_batch)
    svc.lookups.take(token.id, charge)
    checked: list[tuple[Algorithm, str] | str] = []
    for item in body.hashes:
        try:
            checked.append(_normalised(item))
        except InvalidRow as exc:
            checked.append(str(exc))
    valid = [query for query in checked if not isinstance(query, str)]
    charged = _admit(svc, token, charge, valid)
    try:
        seq, banks, found = svc.matcher.versioned_lookup(valid)
    except NotLoaded as exc:
        _refund(charged)
        raise ProblemError(503, "Not ready", str(exc), {"Retry-After": "5"}) from None
    except Exception:  # the store did not answer: nothing was looked up (never "no match")
        _refund(charged)
        log.exception("a lookup could not be answered; answered 503")
        raise _not_checked() from None
    try:
        _watch(svc, token, valid, found)
    except ProblemError:
        _refund(charged)
        raise
    if charged is not None:
        try:
            _count(svc, token, charged, valid, found, banks)
        except Exception:  # a tenant's matches are never answered unrecorded
            log.exception("a tenant's lookup could not be recorded; answered 503")
            raise _not_checked() from None
    return checked, seq, banks, found


def _normalised(item: LookupItem) -> tuple[Algorithm, str]:
    """A query as the matcher takes it: a hash's canonical hex, or a video's frames as
    a canonical ``vpdq_signal``; ``InvalidRow`` saying what is wrong."""
    if item.algorithm is Algorithm.VPDQ:
        if isinstance(item.hash, str):
            raise InvalidRow("a vpdq hash is a list of 'pdq_hex,quality,timestamp' frames")
        _digest, frames = parse_signal(Algorithm.VPDQ, item.hash)
        return Algorithm.VPDQ, vpdq_signal(frames)
    if isinstance(item.hash, list):
        raise InvalidRow(f"a {item.algorithm} hash is a string")
    return item.algorithm, normalise_hash(item.algorithm, item.hash)


def _shown(algorithm: Algorithm, value: str) -> str:
    """What an answer echoes of a query: the hash, or a video's ``vpdq_digest``."""
    return signal_digest(value) if algorithm is Algorithm.VPDQ else value


def _lookup(body: LookupIn, token: Token, svc: Services) -> LookupOut:
    checked, seq, banks, found = looked_up(body, token, svc)
    distances = token.id in svc.settings.lookup_distance_tokens
    by_name = {bank.name: bank for bank in banks}
    matches = iter(found)
    results = []
    for item, query in zip(body.hashes, checked, strict=True):
        if isinstance(query, str):
            results.append(
                LookupResult(
                    algorithm=item.algorithm,
                    hash=item.hash if isinstance(item.hash, str) else "",
                    valid=False,
                    reason=query,
                    matches=[],
                )
            )
        else:
            results.append(
                LookupResult(
                    algorithm=item.algorithm,
                    hash=_shown(*query),
                    valid=True,
                    matches=[
                        LookupMatchOut.hiding(m, distances=distances, bank=by_name.get(m.bank))
                        for m in next(matches)
                    ],
                )
            )
    return LookupOut(results=results, index_version=seq)


def _cost(body: LookupIn) -> int:
    """The index searches a call asks for: one a hash, one a vPDQ frame."""
    return sum(1 if isinstance(item.hash, str) else len(item.hash) for item in body.hashes)


def _admit(
    svc: Services, token: Token, submitted: int, valid: list[tuple[Algorithm, str]]
) -> Charged | None:
    """A tenant's call through its rate limit and quota (None: a token of no tenant)."""
    try:
        return admit(
            store=svc.store,
            directory=svc.tenants,
            rates=svc.tenant_rates,
            clock=svc.clock,
            token=token,
            submitted=submitted,
            distinct=len(set(valid)),
        )
    except ProblemError:
        raise
    except Exception:  # the quota could not be counted: nothing is answered uncounted
        log.exception("a tenant's lookup could not be counted; answered 503")
        raise _not_checked() from None


def _not_checked() -> ProblemError:
    return ProblemError(
        503,
        "Not checked",
        "the hashes could not be looked up right now: try again",
        {"Retry-After": "5"},
    )


def _refund(charged: Charged | None) -> None:
    if charged is not None:
        charged.refund()


def _count(
    svc: Services,
    token: Token,
    charged: Charged,
    queries: list[tuple[Algorithm, str]],
    found: list[tuple[Match, ...]],
    banks_known: tuple[Bank, ...],
) -> None:
    """Count a tenant's answered call's matches (distinct hashes) on its day; a call
    that matched is audited, naming the tenant and counts per bank and per list source
    and category (the statistics' ``lookup_matches``, counted in that event's
    transaction), never a hash, so the hotline can follow up with the host."""
    hits = {query: matches for query, matches in zip(queries, found, strict=True) if matches}
    charged.answered(len(hits))
    if not hits:
        return
    sources = {bank.name: bank.source or "" for bank in banks_known}
    banks: dict[str, int] = {}
    listed: dict[tuple[str, str], int] = {}
    for matches in hits.values():
        for bank in {m.bank for m in matches}:
            banks[bank] = banks.get(bank, 0) + 1
        for key in {(sources.get(m.bank, ""), m.category or "") for m in matches}:
            listed[key] = listed.get(key, 0) + 1
    record(
        svc.store,
        token_actor(token),
        AuditAction.LOOKUP_MATCHED,
        f"tenant:{charged.tenant.name}",
        tenant=charged.tenant.name,
        day=charged.day.isoformat(),
        hashes=charged.hashes,
        matched=len(hits),
        banks=banks,
        by_source=[[source, category, n] for (source, category), n in sorted(listed.items())],
    )


def _watch(
    svc: Services,
    token: Token,
    queries: list[tuple[Algorithm, str]],
    found: list[tuple[Match, ...]],
) -> None:
    """Charge the call's PDQ and vPDQ lookups to the token's probing budget, or refuse
    it whole (429, nothing answered) and record the alert."""
    pdq = [
        (value, bool(matches))
        for (algorithm, value), matches in zip(queries, found, strict=True)
        if algorithm is Algorithm.PDQ
    ]
    videos = [
        ([f.value for f in frames_of_signal(value) if not f.low_quality], bool(matches))
        for (algorithm, value), matches in zip(queries, found, strict=True)
        if algorithm is Algorithm.VPDQ
    ]
    if not pdq and not videos:
        return
    tenant = svc.tenants.get(token.tenant).id if token.tenant is not None else None
    verdict = svc.probes.check(token.id, pdq, tenant_id=tenant, videos=videos)
    if not verdict.refused:
        return
    svc.metrics.rejected.labels("probing").inc()
    if verdict.alert:
        _alert(svc, token, verdict)
    whose = "this tenant's" if verdict.of == "tenant" else "this token's"
    raise ProblemError(
        429,
        "Too many requests for this tenant"
        if verdict.of == "tenant"
        else "Too many requests for this token",
        f"this call has {verdict.close} PDQ or vPDQ lookups close to {whose} recent matched "
        f"ones; {max(0, verdict.budget - verdict.used)} more are allowed in the next "
        f"{svc.settings.lookup_probe_window_seconds:g} s (reading a list by lookup is not)",
        {"Retry-After": str(int(svc.settings.lookup_probe_window_seconds))},
    )


def _alert(svc: Services, token: Token, verdict: ProbeVerdict) -> None:
    settings = svc.settings
    record(
        svc.store,
        token_actor(token),
        AuditAction.LOOKUP_PROBING,
        f"token:{token.id}",
        close_lookups=verdict.close,
        used=verdict.used,
        budget=verdict.budget,
        radius=settings.lookup_probe_radius,
        window_seconds=settings.lookup_probe_window_seconds,
        refused_calls=verdict.refused_since_alert,
        **({"tenant": token.tenant, "budget_of": verdict.of} if token.tenant is not None else {}),
    )
