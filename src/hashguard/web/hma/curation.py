"""HMA's curation routes (/hma/c): banks and their content, through hashguard's bank
services (each change audited); shapes as HMA's curation blueprint (see router.py)."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from hashguard.audit import token_actor
from hashguard.banks.formats import InvalidRow, parse_signal
from hashguard.domain.banks import Bank, BankEntry, SignalState
from hashguard.domain.signals import Algorithm
from hashguard.domain.tokens import Scope, Token
from hashguard.matching.service import NotLoaded
from hashguard.services import banks as service
from hashguard.store.banks import BankExists, InvalidBankName, UnknownBank
from hashguard.web.hma.router import (
    CONTENT_TYPES,
    SIGNAL_TYPES,
    BankName,
    ContentId,
    HmaError,
    Svc,
    _answer,
    _fetch,
    _hash,
    _token,
    _upload,
    asked_types,
)
from hashguard.web.services import Services

router = APIRouter(prefix="/hma/c", tags=["hma"], include_in_schema=False)
Read = Annotated[Token, _token(Scope.BANKS_READ)]
Write = Annotated[Token, _token(Scope.BANKS_WRITE)]


def _bank(bank: Bank) -> dict[str, Any]:
    return {"name": bank.name, "matching_enabled_ratio": 1.0 if bank.enabled else 0.0}


def _enabled(body: dict[str, Any]) -> bool | None:
    """HMA's ``enabled_ratio`` or ``enabled``: hashguard banks are on or off."""
    ratio = body.get("enabled_ratio")
    if ratio is not None:
        try:  # HMA's pydantic takes "1" as 1.0, and Coop sends it so
            value = float(ratio)
        except (TypeError, ValueError):
            raise HmaError(400, "enabled_ratio is a number") from None
        if value not in (0.0, 1.0):
            raise HmaError(400, "hashguard banks are on (1.0) or off (0.0), never sampled")
        return value == 1.0
    enabled = body.get("enabled")
    return None if enabled is None else bool(enabled)


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise HmaError(400, "this endpoint expects a json object payload") from None
    if not isinstance(body, dict):
        raise HmaError(400, "this endpoint expects a json object payload")
    return body


def _get(svc: Any, name: str) -> Bank:
    bank: Bank | None = svc.store.banks.find(name)
    if bank is None:
        raise HmaError(404, f"bank '{name}' not found")
    return bank


@router.get("/banks")
async def banks_index(svc: Svc, _t: Read) -> Response:
    async def work() -> list[dict[str, Any]]:
        return [_bank(b) for b in await run_in_threadpool(svc.store.banks.list)]

    return await _answer(work)


@router.get("/bank/{name}")
async def bank_show(name: BankName, svc: Svc, _t: Read) -> Response:
    async def work() -> dict[str, Any]:
        return _bank(await run_in_threadpool(_get, svc, name))

    return await _answer(work)


@router.post("/banks")
async def bank_create(request: Request, svc: Svc, token: Write) -> Response:
    async def work() -> dict[str, Any]:
        body = await _json(request)
        name = body.get("name")
        if not isinstance(name, str):
            raise HmaError(400, "name is required")
        enabled = _enabled(body)
        try:
            bank = await run_in_threadpool(
                lambda: service.create_bank(
                    svc.store,
                    token_actor(token),
                    name,
                    enabled=True if enabled is None else enabled,
                )
            )
        except InvalidBankName as exc:
            raise HmaError(400, str(exc)) from None
        except BankExists:
            raise HmaError(403, "Bank already exists") from None
        return _bank(bank)

    return await _answer(work, 201)


@router.put("/bank/{name}")
async def bank_update(name: BankName, request: Request, svc: Svc, token: Write) -> Response:
    async def work() -> dict[str, Any]:
        body = await _json(request)
        if body.get("name") not in (None, name):
            raise HmaError(400, "hashguard does not rename banks (names are persisted ids)")
        enabled = _enabled(body)
        try:
            bank = await run_in_threadpool(
                lambda: service.configure_bank(
                    svc.store, token_actor(token), name, service.BankChanges(enabled=enabled)
                )
            )
        except UnknownBank:
            raise HmaError(404, "Bank not found") from None
        return _bank(bank)

    return await _answer(work)


@router.delete("/bank/{name}")
async def bank_delete(name: BankName, svc: Svc, token: Write) -> Response:
    async def work() -> dict[str, Any]:
        with contextlib.suppress(UnknownBank):  # HMA answers "Done" for any name
            await run_in_threadpool(service.delete_bank, svc.store, token_actor(token), name)
        return {"message": "Done"}

    return await _answer(work)


def _entries(signals: dict[str, Any]) -> list[BankEntry]:
    if not signals:
        raise HmaError(400, "No signals given")
    entries = []
    for name, value in signals.items():
        algorithm = SIGNAL_TYPES.get(name)
        if algorithm is None:
            raise HmaError(400, f"No such signal type {name}")
        if not isinstance(value, str):
            raise HmaError(400, f"Invalid {name} signal: not a string")
        try:  # a vpdq signal is one video: one entry holding its frames
            stored, frames = parse_signal(algorithm, value)
        except InvalidRow as exc:
            raise HmaError(400, f"Invalid {name} signal: {exc}") from None
        entries.append(BankEntry(algorithm=algorithm, value=stored, frames=frames))
    return list({(e.algorithm, e.value): e for e in entries}.values())


async def _add(svc: Any, token: Token, name: str, signals: dict[str, str]) -> dict[str, Any]:
    entries = _entries(signals)
    try:
        content, _counts = await run_in_threadpool(
            service.add_content, svc.store, token_actor(token), name, entries
        )
    except UnknownBank:
        raise HmaError(404, f"bank '{name}' not found") from None
    return {"id": content, "signals": dict(signals)}


@router.post("/bank/{name}/content")
async def bank_add_content(name: BankName, request: Request, svc: Svc, token: Write) -> Response:
    async def work() -> dict[str, Any]:
        await run_in_threadpool(_get, svc, name)
        query = request.query_params
        url = query.get("url")
        if url:  # only from the allowlisted hosts, as GET /h/hash?url=
            data = await run_in_threadpool(_fetch, svc, url)
            field = query.get("content_type") or "photo"
        else:
            field, data = await _upload(request)
        signals = await _hash(svc, data, field, query.get("types"))
        return await _add(svc, token, name, signals)

    return await _answer(work)


@router.post("/bank/{name}/signal")
async def bank_add_signal(name: BankName, request: Request, svc: Svc, token: Write) -> Response:
    async def work() -> dict[str, Any]:
        body = await _json(request)
        body.pop("note", None)
        return await _add(svc, token, name, body)

    return await _answer(work)


#: HMA's disable_until_ts of enabled content (BankContentConfig.ENABLED)
CONTENT_ENABLED = 1


def _content(svc: Any, name: str, content_id: int) -> dict[str, Any]:
    """HMA's BankContentResponse of a content item with live entries. ``signals`` is
    left out whatever ``include_signals`` says: a bank's hashes are confidential and
    never leave hashguard (docs/hma.md); hashguard keeps no note or media URI."""
    bank = _get(svc, name)
    found = svc.store.banks.content_algorithms(name, content_id)
    if not found:
        raise HmaError(404, f"content '{content_id}' not found")
    return {
        "id": content_id,
        "disable_until_ts": CONTENT_ENABLED,
        "original_media_uri": None,
        "bank": _bank(bank),
    }


@router.get("/bank/{name}/content/{content_id}")
async def bank_get_content(name: BankName, content_id: ContentId, svc: Svc, _t: Read) -> Response:
    async def work() -> dict[str, Any]:
        return await run_in_threadpool(_content, svc, name, content_id)

    return await _answer(work)


@router.put("/bank/{name}/content/{content_id}")
async def bank_update_content(
    name: BankName, content_id: ContentId, request: Request, svc: Svc, _t: Write
) -> Response:
    """HMA's content update (``disable_until_ts``, ``note``). hashguard's entries are
    live or removed, never disabled for a while, and carry no note: a request that
    would change either is refused (400) rather than answered as done; one that
    changes nothing answers the content."""

    async def work() -> dict[str, Any]:
        body = await _json(request)
        current = await run_in_threadpool(_content, svc, name, content_id)
        until = body.get("disable_until_ts")
        if until is not None and str(until) != str(CONTENT_ENABLED):
            raise HmaError(
                400,
                "hashguard does not disable content for a while: remove it "
                "(DELETE /c/bank/{name}/content/{id}) and add it again later",
            )
        if body.get("note"):
            raise HmaError(400, "hashguard keeps no notes on content")
        return current

    return await _answer(work)


@router.delete("/bank/{name}/content/{content_id}")
async def bank_delete_content(
    name: BankName, content_id: ContentId, svc: Svc, token: Write
) -> Response:
    async def work() -> dict[str, Any]:
        try:
            removed = await run_in_threadpool(
                service.remove_content, svc.store, token_actor(token), name, content_id
            )
        except UnknownBank:
            raise HmaError(404, f"bank '{name}' not found") from None
        return {"deleted": removed}

    return await _answer(work)


async def _signal_types() -> list[dict[str, Any]]:
    return [{"name": name, "enabled_ratio": 1.0} for name in SIGNAL_TYPES]


async def _content_types() -> list[dict[str, Any]]:
    return [{"name": name, "enabled": True} for name in CONTENT_TYPES]


def _stamp(value: datetime | None) -> int:
    return -1 if value is None else int(value.timestamp())


def _index_status(svc: Services, names: list[str]) -> dict[str, dict[str, Any]]:
    """HMA's index build status per signal type, from the match index and the bank
    entries: ``db_size`` live entries of the type in every bank, ``index_size`` those
    the index holds, ``newest_db_item`` when the newest was added and ``index_built_to``
    when the newest the index has applied was (-1: none), ``index_out_of_date`` while
    the store has changes to the type's entries the index has not applied."""
    try:
        seq, sizes = svc.matcher.sizes()
        loaded = True
    except NotLoaded:
        seq, sizes, loaded = -1, {}, False
    states: dict[Algorithm, SignalState] = {}
    out = {}
    for name in names:
        algorithm = SIGNAL_TYPES[name]
        if algorithm not in states:
            states[algorithm] = svc.store.banks.signal_state(algorithm, seq)
        state = states[algorithm]
        out[name] = {
            "db_size": state.live,
            "index_size": sizes.get(algorithm, 0),
            "index_out_of_date": state.pending if loaded else state.live > 0,
            "newest_db_item": _stamp(state.newest),
            "index_built_to": _stamp(state.newest_applied),
        }
    return out


@router.get("/signal_type/index")
async def signal_type_index(svc: Svc, _t: Read, signal_type: str | None = None) -> Response:
    async def work() -> dict[str, Any]:
        return await run_in_threadpool(_index_status, svc, asked_types(signal_type))

    return await _answer(work)


@router.get("/signal_type")
@router.get("/signal_types")
async def signal_types(_t: Read) -> Response:
    return await _answer(_signal_types)


@router.put("/signal_type/{signal_type_name}")
async def signal_type_update(
    signal_type_name: str, request: Request, _t: Annotated[Token, _token(Scope.ADMIN)]
) -> Response:
    """HMA switches a signal type on, off or sampled; hashguard's are always on, so only
    ``enabled_ratio`` 1.0 is taken (HMA answers 204, with no body)."""

    async def work() -> Response:
        if signal_type_name not in SIGNAL_TYPES:
            raise HmaError(404, f"No such signal type '{signal_type_name}'")
        ratio = (await _json(request)).get("enabled_ratio")
        if ratio is None:
            raise HmaError(400, "enabled_ratio is required")
        try:
            value = float(ratio)
        except (TypeError, ValueError):
            raise HmaError(400, "enabled_ratio is a number") from None
        if value != 1.0:
            raise HmaError(400, "hashguard's signal types are always on (1.0)")
        return Response(status_code=204)

    return await _answer(work)


@router.get("/content_type")
@router.get("/content_types")
async def content_types(_t: Read) -> Response:
    return await _answer(_content_types)
