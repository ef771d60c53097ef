"""HMA's routes (/h hashing, /m matching, /c curation, /status) under /hma: parse, call
hashguard's pipeline, lookup and bank services, render HMA's shapes (docs/hma.md).

Shapes follow HMA's Flask blueprints and pydantic schemas (facebook/ThreatExchange,
hasher-matcher-actioner, commit baefb4ed67b6cdc1d4c82dbaef858d50866ac424). Errors are
HMA's ``{"message": …}``; what the gate refuses (401, 413) stays a problem document.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from hashguard.banks.formats import InvalidRow, normalise_hash, parse_signal
from hashguard.domain.banks import BANK_NAME_PATTERN
from hashguard.domain.cases import ContentRef
from hashguard.domain.matches import Match
from hashguard.domain.signals import Algorithm, FileSignals, PdqMode
from hashguard.domain.tokens import Scope, Token
from hashguard.domain.video import vpdq_signal
from hashguard.hashing.isolate import PoolStopped
from hashguard.matching.vpdq import COMPARED_PERCENT, QUERY_PERCENT, VpdqIndex, VpdqThresholds
from hashguard.scan.sources import Upload
from hashguard.store.banks import HMA_CONTENT
from hashguard.web.api.health import FRESH_FLOOR_SECONDS, FRESH_INTERVALS
from hashguard.web.api.lookup import looked_up
from hashguard.web.api.scan import run_upload
from hashguard.web.deps import require, services
from hashguard.web.problems import ProblemError, request_id_of
from hashguard.web.schemas.fields import NO_NUL
from hashguard.web.schemas.lookup import LookupIn, LookupItem
from hashguard.web.services import Services
from hashguard.web.uploads import read_upload

router = APIRouter(prefix="/hma", tags=["hma"], include_in_schema=False)
Svc = Annotated[Services, Depends(services)]
#: a bank named in a path: a name hashguard could have given a bank (never a NUL, a lone
#: surrogate or 10 kB of text reaching the store); otherwise HMA's 400
BankName = Annotated[str, Path(pattern=BANK_NAME_PATTERN)]
#: an exchange (or the bank it syncs into) named in a path: text a store can keep
ExchangeName = Annotated[str, Path(max_length=200, pattern=NO_NUL)]
#: a content id in a path: an id a row can have (PostgreSQL's bigint)
ContentId = Annotated[int, Path(ge=0, le=2**63 - 1)]

#: HMA signal type names -> the algorithm hashguard stores them as (video_md5 is the
#: MD5 of a video file's bytes: the same value as md5; vpdq is HMA's name with its vpdq
#: extension on, its signal python-threatexchange's JSON list of frames)
SIGNAL_TYPES = {
    "pdq": Algorithm.PDQ,
    "md5": Algorithm.MD5,
    "video_md5": Algorithm.MD5,
    "vpdq": Algorithm.VPDQ,
}
#: HMA content types -> the signal types a file of that type is hashed into
CONTENT_TYPES = {"photo": ("pdq", "md5"), "video": ("video_md5", "vpdq")}
#: what HMA's /m/compare calls a PDQ match (PdqSignal.PDQ_CONFIDENT_MATCH_THRESHOLD)
PDQ_COMPARE_THRESHOLD = 31
#: an untrusted token's PDQ distance (docs/hma.md: distances are withheld)
WITHHELD = "-1"
FETCH_LIMIT = 32 * 1024 * 1024


class HmaError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _error(exc: HmaError) -> JSONResponse:
    return JSONResponse({"message": exc.message}, exc.status, headers=exc.headers)


async def _answer(call: Callable[[], Awaitable[Any]], status: int = 200) -> Response:
    """Run a route's work; hashguard's refusals become HMA's error shape."""
    try:
        found = await call()
    except HmaError as exc:
        return _error(exc)
    except ProblemError as exc:
        return _error(HmaError(exc.status, exc.detail or exc.title, dict(exc.headers or {})))
    if isinstance(found, Response):
        return found
    return JSONResponse(found, status)


def _token(scope: Scope) -> Any:
    return Depends(require(scope))


# -- status ------------------------------------------------------------------------


@router.get("/status", response_class=PlainTextResponse)
def status(svc: Svc) -> PlainTextResponse:
    """HMA's meaning: 200 ``I-AM-ALIVE`` while the index is loaded and fresh, else 503."""
    if not svc.matcher.loaded:
        return PlainTextResponse("INDEX-NOT-LOADED", 503)
    limit = max(FRESH_FLOOR_SECONDS, FRESH_INTERVALS * svc.settings.index_refresh_seconds)
    if svc.matcher.state().age > limit:
        return PlainTextResponse("INDEX-STALE", 503)
    return PlainTextResponse("I-AM-ALIVE", 200)


# -- hashing -----------------------------------------------------------------------


def _wanted_types(content_type: str, types: str | None) -> tuple[str, ...]:
    if content_type not in CONTENT_TYPES:
        raise HmaError(400, f"no such content_type: '{content_type}'")
    offered = CONTENT_TYPES[content_type]
    if types is None:
        return offered
    asked = tuple(t for t in types.split(",") if t)
    for name in asked:
        if name not in offered:
            raise HmaError(400, f"signal type '{name}' doesn't exist or is disabled")
    if not asked:
        raise HmaError(400, "empty signal type selection")
    return asked


async def _hash(svc: Services, data: bytes, content_type: str, types: str | None) -> dict[str, str]:
    """The HMA signals of one file, hashed in the isolated pool in reference mode (the
    only PDQ hashes that leave hashguard)."""
    wanted = _wanted_types(content_type, types)
    options = dataclasses.replace(svc.pool.options, pdq_mode=PdqMode.REFERENCE)
    try:
        output = await _wait(svc.pool.submit_data(data, options=options))
    except PoolStopped as exc:
        raise HmaError(503, str(exc), {"Retry-After": "5"}) from None
    if output.signals is None:
        raise HmaError(400, f"could not hash the file: {output.reason}")
    return _signals(output.signals, wanted, strict=output.problem is None)


async def _wait(future: Any) -> Any:
    return await asyncio.wrap_future(future)


def _signals(signals: FileSignals, wanted: Sequence[str], *, strict: bool) -> dict[str, str]:
    """The wanted HMA signals of a hashed file. A video's vpdq is left out when it has
    none (not decodable as a video, or the video extra is not installed), as HMA's
    hasher leaves out a signal it could not compute."""
    out: dict[str, str] = {}
    for name in wanted:
        if name == "pdq":
            pdq = signals.reference_pdq
            if pdq:
                out[name] = pdq[0].value
        elif name == "vpdq":
            if signals.vpdq:
                out[name] = vpdq_signal(signals.vpdq)
        else:
            out[name] = signals.md5
    if "pdq" in wanted and "pdq" not in out and strict:
        raise HmaError(400, "the file is not a decodable image")
    return out


async def _upload(request: Request) -> tuple[str, bytes]:
    """HMA's multipart upload: one file part named after its content type."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HmaError(400, "Missing multipart/form-data file upload")
    errors = []
    for field in CONTENT_TYPES:
        try:
            upload = await read_upload(request, file_field=field)
        except ProblemError as exc:
            errors.append(exc.detail or exc.title)
            continue
        return field, upload.data
    raise HmaError(400, f"expected one file part named photo or video ({'; '.join(errors)})")


def _fetch(svc: Services, url: str) -> bytes:
    """GET a URL on a configured allowlisted host (never any other: no SSRF), without
    redirects, under a size limit."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise HmaError(400, "not a URL") from None
    if parts.scheme not in ("http", "https") or host not in svc.settings.hma_url_hosts:
        raise HmaError(403, "URL fetching is limited to the configured hosts (hma_url_hosts)")
    try:
        with (
            httpx.Client(timeout=10.0, follow_redirects=False) as client,
            client.stream("GET", url) as answer,
        ):
            if answer.status_code != 200:
                raise HmaError(400, f"Failed to fetch URL: HTTP {answer.status_code}")
            data = bytearray()
            for chunk in answer.iter_bytes():
                data.extend(chunk)
                if len(data) > FETCH_LIMIT:
                    raise HmaError(413, "Content too large")
            return bytes(data)
    except httpx.HTTPError as exc:
        raise HmaError(400, f"Failed to fetch URL: {type(exc).__name__}") from None


@router.get("/h/hash")
async def hash_url(
    svc: Svc,
    _caller: Annotated[Token, _token(Scope.SCAN)],
    url: str,
    content_type: str = "photo",
    types: str | None = None,
) -> Response:
    async def work() -> dict[str, str]:
        data = await run_in_threadpool(_fetch, svc, url)
        return await _hash(svc, data, content_type, types)

    return await _answer(work)


@router.post("/h/hash")
async def hash_upload(
    request: Request, svc: Svc, _caller: Annotated[Token, _token(Scope.SCAN)]
) -> Response:
    async def work() -> dict[str, str]:
        field, data = await _upload(request)
        return await _hash(svc, data, field, request.query_params.get("types"))

    return await _answer(work)


# -- matching ----------------------------------------------------------------------


def _content_id(match: Match) -> int:
    """HMA's integer content id of a matched entry: the number of the content it was
    added as (``hma:<n>``), else the entry's own row id."""
    if match.entry_id and match.entry_id.startswith(HMA_CONTENT):
        return int(match.entry_id[len(HMA_CONTENT) :])
    assert match.entry_ref is not None, "the matcher sets entry_ref"
    return match.entry_ref


def _banks(banks: str | None) -> set[str] | None:
    return set(banks.split(",")) if banks else None


def _query(algorithm: Algorithm, signal: str) -> LookupIn:
    """An HMA signal as /v1/lookup's query: a hash, or a vpdq signal's frames."""
    if algorithm is not Algorithm.VPDQ:
        try:  # a NUL or a lone surrogate is no hash (pydantic's ValidationError)
            return LookupIn(hashes=[LookupItem(algorithm=algorithm, hash=signal[:64] or "-")])
        except ValueError:
            raise HmaError(400, f"invalid signal: not a {algorithm} hash") from None
    try:
        frames = json.loads(signal)
        return LookupIn(hashes=[LookupItem(algorithm=algorithm, hash=frames)])
    except ValueError:  # not JSON, or not a list of 'pdq_hex,quality,timestamp' frames
        raise HmaError(
            400, "invalid signal: a vpdq signal is a JSON list of 'pdq_hex,quality,timestamp'"
        ) from None


def _hash_lookup(
    svc: Services, token: Token, signal_type: str, signal: str
) -> tuple[Algorithm, tuple[Match, ...]]:
    """One hash (or one video's vpdq signal) through /v1/lookup's guards (rate limit,
    quota, probing, audit) and its matching."""
    algorithm = SIGNAL_TYPES.get(signal_type)
    if algorithm is None:
        raise HmaError(400, f"No such SignalType '{signal_type}'")
    checked, _seq, _banks_of, found = looked_up(_query(algorithm, signal), token, svc)
    if isinstance(checked[0], str):
        raise HmaError(400, f"invalid signal: {checked[0]}")
    return algorithm, found[0]


def _distance(match: Match, *, trusted: bool) -> str:
    """HMA's distance string: the bits of a PDQ or exact match; for vpdq, as
    python-threatexchange's VPDQSimilarityInfo prints it, the share of the query's
    frames that matched and, in brackets, of the listed video's (``"100%[92%]"``).
    Withheld from an untrusted token for PDQ and vpdq, as /v1/lookup withholds them."""
    if match.algorithm in (Algorithm.PDQ, Algorithm.VPDQ) and not trusted:
        return WITHHELD
    if match.algorithm is Algorithm.VPDQ:
        return f"{match.query_percent or 0.0:.0f}%[{match.compared_percent or 0.0:.0f}%]"
    return str(match.distance)


def _live(matches: Sequence[Match], banks: set[str] | None) -> list[Match]:
    """The matches HMA answers: from an enabled, not suppressed entry in a wanted bank."""
    return [m for m in matches if m.suppressed_by is None and (banks is None or m.bank in banks)]


@router.get("/m/raw_lookup")
async def raw_lookup(
    svc: Svc,
    token: Annotated[Token, _token(Scope.LOOKUP)],
    signal_type: str,
    signal: str,
    banks: str | None = None,
    include_distance: bool = False,
) -> Response:
    async def work() -> dict[str, Any]:
        _alg, found = await run_in_threadpool(_hash_lookup, svc, token, signal_type, signal)
        matches = _live(found, _banks(banks))
        if not include_distance:
            return {"matches": list(dict.fromkeys(_content_id(m) for m in matches))}
        trusted = token.id in svc.settings.lookup_distance_tokens
        return {
            "matches": [
                {"bank_content_id": _content_id(m), "distance": _distance(m, trusted=trusted)}
                for m in matches
            ]
        }

    return await _answer(work)


def _by_bank(matches: Sequence[Match], *, trusted: bool) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    seen: set[tuple[str, int]] = set()
    for m in matches:
        key = (m.bank, _content_id(m))
        if key in seen:
            continue
        seen.add(key)
        out.setdefault(m.bank, []).append(
            {"bank_content_id": key[1], "distance": _distance(m, trusted=trusted)}
        )
    return out


@router.get("/m/lookup")
async def lookup_get(
    svc: Svc,
    token: Annotated[Token, _token(Scope.LOOKUP)],
    signal_type: str | None = None,
    signal: str | None = None,
    url: str | None = None,
    banks: str | None = None,
    content_type: str = "photo",
) -> Response:
    async def work() -> Any:
        if url:
            if Scope.SCAN not in token.scopes and Scope.ADMIN not in token.scopes:
                raise HmaError(403, "Hashing is disabled, missing role")
            _wanted_types(content_type, None)
            data = await run_in_threadpool(_fetch, svc, url)
            answer = await _scan(
                svc, token, data, content_type, request_id=None, banks=_banks(banks)
            )
            return answer.get(signal_type, {}) if signal_type else answer
        if not signal or not signal_type:
            raise HmaError(400, "Either url or both signal and signal_type are required")
        _alg, found = await run_in_threadpool(_hash_lookup, svc, token, signal_type, signal)
        trusted = token.id in svc.settings.lookup_distance_tokens
        return _by_bank(_live(found, _banks(banks)), trusted=trusted)

    return await _answer(work)


async def _scan(
    svc: Services,
    token: Token,
    data: bytes,
    content_type: str,
    *,
    request_id: str | None,
    banks: set[str] | None,
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """An upload through the one pipeline (case, decision, evidence, audit as for
    /v1/scan), answered as HMA's lookup: matches by signal type, then by bank. A photo
    answers ``pdq`` (when it has one) and ``md5``; a video ``video_md5`` and ``vpdq``
    (when it has frames), and ``pdq`` only when its frames matched image entries (HMA
    has no such match). The file is the caller's own, so distances are shown as
    /v1/scan shows them."""
    source = Upload(data=data, request_id=request_id, content_ref=ContentRef())
    done = await run_upload(svc, token, source)
    result = done.result
    if result.signals is None:
        raise HmaError(400, f"could not hash the file: {result.reason}")
    video = content_type == "video"
    exact = "video_md5" if video else "md5"
    answer: dict[str, dict[str, list[dict[str, Any]]]] = {exact: {}}
    if result.signals.pdq and not video:
        answer["pdq"] = {}
    if result.signals.vpdq and video:
        answer["vpdq"] = {}
    for algorithm, name in (
        (Algorithm.PDQ, "pdq"),
        (Algorithm.MD5, exact),
        (Algorithm.VPDQ, "vpdq"),
    ):
        matched = [m for m in result.matches if m.algorithm is algorithm]
        if matched:
            answer[name] = _by_bank(_live(matched, banks), trusted=True)
    return answer


@router.post("/m/lookup")
async def lookup_post(
    request: Request, svc: Svc, token: Annotated[Token, _token(Scope.SCAN)]
) -> Response:
    async def work() -> Any:
        field, data = await _upload(request)
        banks = _banks(request.query_params.get("banks"))
        return await _scan(svc, token, data, field, request_id=request_id_of(request), banks=banks)

    return await _answer(work)


def _compare(name: str, pair: Any) -> list[Any]:
    algorithm = SIGNAL_TYPES.get(name)
    if algorithm is None:
        raise HmaError(400, f"No such SignalType '{name}'")
    if not isinstance(pair, list):
        raise HmaError(400, f"Comparison hashes for {name} was not a list")
    if len(pair) != 2 or not all(isinstance(h, str) for h in pair):
        raise HmaError(400, "Comparison hash list length must be exactly 2")
    if algorithm is Algorithm.VPDQ:
        return _compare_videos(pair[0], pair[1])
    try:
        left, right = (normalise_hash(algorithm, h) for h in pair)
    except InvalidRow as exc:
        raise HmaError(400, f"Invalid {name} hash: {exc}") from None
    if algorithm is Algorithm.PDQ:
        distance = (int(left, 16) ^ int(right, 16)).bit_count()
        return [distance <= PDQ_COMPARE_THRESHOLD, {"distance": distance}]
    return [left == right, {"distance": 0 if left == right else 1}]


def _compare_videos(left: str, right: str) -> list[Any]:
    """Two vpdq signals as threatexchange's VPDQSignal.compare_hash answers them:
    matched under the reference thresholds, with both match percentages."""
    try:
        query, listed = (parse_signal(Algorithm.VPDQ, s)[1] for s in (left, right))
    except InvalidRow as exc:
        raise HmaError(400, f"Invalid vpdq hash: {exc}") from None
    everything = VpdqThresholds(query_percent=0.0, compared_percent=0.0)
    found = VpdqIndex({"listed": listed}, everything).search(query)
    shares = (found[0].query_percent, found[0].compared_percent) if found else (0.0, 0.0)
    matched = shares[0] >= QUERY_PERCENT and shares[1] >= COMPARED_PERCENT
    return [matched, {"query_match_percent": shares[0], "compared_match_percent": shares[1]}]


@router.post("/m/compare")
async def compare(request: Request, _caller: Annotated[Token, _token(Scope.LOOKUP)]) -> Response:
    async def work() -> dict[str, Any]:
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise HmaError(400, "Request input was not a dict") from None
        if not isinstance(body, dict):
            raise HmaError(400, "Request input was not a dict")
        return {name: _compare(name, pair) for name, pair in body.items()}

    return await _answer(work)


def asked_types(wanted: str | None) -> list[str]:
    """The signal types a status route answers: every one, or the one asked for."""
    if wanted is None:
        return list(SIGNAL_TYPES)
    if wanted not in SIGNAL_TYPES:
        raise HmaError(400, f"No such signal type '{wanted}'")
    return [wanted]


@router.get("/m/index/status")
async def index_status(
    svc: Svc, _caller: Annotated[Token, _token(Scope.LOOKUP)], signal_type: str | None = None
) -> Response:
    async def work() -> dict[str, Any]:
        names = asked_types(signal_type)
        if not svc.matcher.loaded:
            return {n: {"present": False, "built_to": -1, "size": 0} for n in names}
        state = svc.matcher.state()
        _seq, sizes = await run_in_threadpool(svc.matcher.sizes)
        built_to = int(svc.clock().timestamp() - state.age)
        return {
            n: {"present": True, "built_to": built_to, "size": sizes[SIGNAL_TYPES[n]]}
            for n in names
        }

    return await _answer(work)
