"""HMA's exchange curation routes (/hma/c/exchange…) over hashguard's exchanges: the
list-source adapters are HMA's exchange APIs, a configured exchange is HMA's exchange
(named by its own name or by its bank's, as HMA names an exchange after its bank).

Shapes as HMA's curation blueprint (router.py names the commit). Credentials are never
answered and never taken over HTTP: hashguard seals them with the master key from a
file or the environment (``hashguard exchanges add --credential``). Every change goes
through the exchange services, each with its audit entry."""

from __future__ import annotations

import contextlib
import re
import types
import typing
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python
from starlette.concurrency import run_in_threadpool

from hashguard.audit import token_actor
from hashguard.domain.exchanges import Exchange
from hashguard.domain.tokens import Scope, Token
from hashguard.plugins import Adapter, AdapterKind, PluginError
from hashguard.services import exchanges as service
from hashguard.store.banks import InvalidBankName
from hashguard.store.exchanges import ExchangeExists, UnknownExchange
from hashguard.web.hma.curation import _json
from hashguard.web.hma.router import ExchangeName, HmaError, Svc, _answer, _token
from hashguard.web.services import Services

router = APIRouter(prefix="/hma/c", tags=["hma"], include_in_schema=False)
Read = Annotated[Token, _token(Scope.BANKS_READ)]
Write = Annotated[Token, _token(Scope.BANKS_WRITE)]
Admin = Annotated[Token, _token(Scope.ADMIN)]

#: HMA's names of the exchange APIs hashguard also has (accepted wherever an API is named)
HMA_API_NAMES = {"fb_threatexchange": "threatexchange", "stop_ncii": "stopncii"}
#: adapters that read the server's own files: set up on the server, never over HTTP
SERVER_FILES = frozenset({"local_file"})
_BANK = re.compile(r"^[A-Z0-9_]+$")


def _api(svc: Services, name: str) -> type[Adapter]:
    try:
        return svc.registry.get(HMA_API_NAMES.get(name, name), AdapterKind.LIST_SOURCE)
    except PluginError:
        raise HmaError(400, f"no such Exchange API '{name}'") from None


def _exchange(svc: Services, name: str) -> Exchange:
    """The exchange named ``name``, else the one exchange syncing into bank ``name``."""
    with contextlib.suppress(UnknownExchange):
        return svc.store.exchanges.get(name)
    users = svc.store.exchanges.users_of_bank(name)
    if len(users) == 1:
        return svc.store.exchanges.get(users[0])
    raise HmaError(404, f"Exchange '{name}' not found")


def _config(exchange: Exchange) -> dict[str, Any]:
    """HMA's exchange config: its name, API and enabled flag, then the exchange's own
    (non-secret) settings; hashguard adds the bank it syncs into."""
    settings = {k: v for k, v in exchange.settings.items() if k not in ("name", "api", "enabled")}
    return {
        "name": exchange.name,
        "api": exchange.adapter,
        "enabled": exchange.enabled,
        "bank": exchange.bank,
        **to_jsonable_python(settings),
    }


def _stamp(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def _fetch_status(svc: Services, exchange: Exchange) -> dict[str, Any]:
    """HMA's FetchStatus from hashguard's sync state. hashguard's checkpoints are the
    adapters' own cursors, not times: ``checkpoint_ts`` is the last successful sync's."""
    state = svc.store.exchanges.state(exchange.name)
    running = svc.store.exchanges.lease_owner(exchange.name) is not None
    attempted = state.last_started_at is not None
    succeeded = None if not attempted else state.last_error is None
    return {
        "checkpoint_ts": _stamp(state.last_success_at),
        "running_fetch_start_ts": _stamp(state.last_started_at) if running else None,
        "last_fetch_complete_ts": _stamp(state.last_success_at),
        "last_fetch_succeeded": succeeded,
        "up_to_date": bool(succeeded) and state.last_success_at is not None,
        "fetched_items": svc.store.banks.stats(exchange.bank).total_active,
    }


def _auth(svc: Services, api: type[Adapter]) -> dict[str, bool]:
    """HMA keeps one set of credentials per API; hashguard one per exchange, sealed. An
    API "has set" them when it takes some and every configured exchange of it has what
    it needs (as HMA, an API without credentials has none set)."""
    mine = [e for e in svc.store.exchanges.list() if e.adapter == api.name]
    have = (
        bool(api.secrets)
        and bool(mine)
        and all(set(api.secrets) <= set(e.credential_names) for e in mine)
    )
    return {"supports_authentification": bool(api.secrets), "has_set_authentification": have}


# -- the schema of an API's settings, as HMA's exchange_schema describes a dataclass ----


def _kind(annotation: Any) -> tuple[str, list[Any] | None]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "enum", list(args)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return _kind(rest[0]) if len(rest) == 1 else ("string", None)
    if origin in (set, frozenset) and args:
        return f"set_of_{_kind(args[0])[0]}", None
    if origin in (list, tuple) and args:
        return f"list_of_{_kind(args[0])[0]}", None
    if annotation is bool:
        return "boolean", None
    if annotation in (int, float):
        return "number", None
    if annotation in (str, Path, datetime):
        return "string", None
    return "string", None


def _field(name: str, info: FieldInfo) -> dict[str, Any]:
    kind, choices = _kind(info.annotation)
    required = info.is_required()
    default = None
    if not required and info.default is not PydanticUndefined:
        default = to_jsonable_python(info.default)
    return {
        "name": name,
        "type": kind,
        "required": required,
        "default": default,
        "help": info.description or "",
        "choices": choices,
    }


def _secret(name: str, required: bool) -> dict[str, Any]:
    where = "hashguard exchanges add --credential NAME=env:VAR|file:PATH (never over HTTP)"
    return {
        "name": name,
        "type": "string",
        "required": required,
        "default": None,
        "help": f"set with {where}",
        "choices": None,
    }


def _schema(api: type[Adapter]) -> dict[str, Any]:
    settings: type[BaseModel] = api.Settings
    fields = [_field(name, info) for name, info in settings.model_fields.items()]
    secrets = [_secret(n, True) for n in api.secrets]
    secrets += [_secret(n, False) for n in api.optional_secrets]
    return {
        "config_schema": {"fields": fields},
        "credentials_schema": {"fields": secrets} if secrets else None,
    }


# -- routes -----------------------------------------------------------------------------


@router.get("/exchanges/apis")
async def exchange_apis(svc: Svc, _t: Read) -> Response:
    async def work() -> list[str]:
        return [a.name for a in svc.registry.enabled(AdapterKind.LIST_SOURCE)]

    return await _answer(work)


@router.get("/exchanges/api/{api_name}")
async def exchange_api(api_name: str, svc: Svc, _t: Read) -> Response:
    async def work() -> dict[str, bool]:
        return await run_in_threadpool(_auth, svc, _api(svc, api_name))

    return await _answer(work)


@router.post("/exchanges/api/{api_name}")
async def exchange_api_credentials(
    api_name: str, request: Request, svc: Svc, _t: Admin
) -> Response:
    """HMA sets an API's credentials here; hashguard never takes them over HTTP. A
    payload without ``credential_json`` answers as the GET does."""

    async def work() -> dict[str, bool]:
        api = _api(svc, api_name)
        body = await _json(request)
        if body.get("credential_json") is not None:
            raise HmaError(
                403,
                "hashguard takes exchange credentials only from a file or the environment, "
                "sealed with its master key: hashguard exchanges add --credential",
            )
        return await run_in_threadpool(_auth, svc, api)

    return await _answer(work)


@router.get("/exchanges/api/{api_name}/schema")
async def exchange_api_schema(api_name: str, svc: Svc, _t: Read) -> Response:
    async def work() -> dict[str, Any]:
        try:
            api = _api(svc, api_name)
        except HmaError:
            raise HmaError(404, f"Exchange API '{api_name}' not found") from None
        return _schema(api)

    return await _answer(work)


@router.post("/exchanges")
async def exchange_create(request: Request, svc: Svc, token: Admin) -> Response:
    """HMA's create: ``{bank, api, api_json}``, the exchange named after its bank. Only
    for APIs that need no credentials and read no server file; the others are set up
    with ``hashguard exchanges add``."""

    async def work() -> Any:
        body = await _json(request)
        bank, api_name = body.get("bank"), body.get("api")
        settings = body.get("api_json", {})
        if not isinstance(bank, str):
            raise HmaError(400, "Field `bank` is required")
        if not _BANK.match(bank):
            raise HmaError(400, "Field `bank` must match /^[A-Z0-9_]+$/")
        if not isinstance(settings, dict):
            raise HmaError(400, "Field `api_json` must be object")
        if not isinstance(api_name, str):
            raise HmaError(400, "Field `api_type` is required")
        api = _api(svc, api_name)
        if api.secrets:
            raise HmaError(
                400,
                f"{api.name} needs credentials ({', '.join(api.secrets)}): set it up with "
                "hashguard exchanges add --credential (never over HTTP)",
            )
        if api.name in SERVER_FILES:
            raise HmaError(403, f"{api.name} reads the server's files: hashguard exchanges add")
        settings = {k: v for k, v in settings.items() if k not in ("name", "api", "enabled")}
        try:
            api.configure(settings, {})
        except PluginError as exc:
            raise HmaError(400, f"Failed to parse `api_json` - {exc}") from None
        try:
            await run_in_threadpool(
                lambda: service.add_exchange(
                    svc.store,
                    token_actor(token),
                    bank,
                    adapter=api.name,
                    bank=bank,
                    settings=settings,
                    secrets={},
                    key=None,
                )
            )
        except (ExchangeExists, service.BankInUse, InvalidBankName) as exc:
            raise HmaError(400, str(exc)) from None
        return {"message": "Created successfully"}

    return await _answer(work, 201)


@router.get("/exchanges")
async def exchanges_index(svc: Svc, _t: Read) -> Response:
    async def work() -> list[str]:
        return [e.name for e in await run_in_threadpool(svc.store.exchanges.list)]

    return await _answer(work)


@router.get("/exchange/{name}")
async def exchange_show(name: ExchangeName, svc: Svc, _t: Read) -> Response:
    async def work() -> dict[str, Any]:
        return _config(await run_in_threadpool(_exchange, svc, name))

    return await _answer(work)


@router.get("/exchange/{name}/status")
async def exchange_status(name: ExchangeName, svc: Svc, _t: Read) -> Response:
    async def work() -> dict[str, Any]:
        def read() -> dict[str, Any]:
            return _fetch_status(svc, _exchange(svc, name))

        return await run_in_threadpool(read)

    return await _answer(work)


@router.put("/exchange/{name}")
async def exchange_update(name: ExchangeName, request: Request, svc: Svc, token: Write) -> Response:
    """HMA changes ``enabled`` only (``exchange.enabled`` / ``exchange.disabled``)."""

    async def work() -> dict[str, Any]:
        body = await _json(request)
        enabled = body.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise HmaError(400, "enabled is a boolean")

        def change() -> Exchange:
            exchange = _exchange(svc, name)
            if enabled is not None and enabled != exchange.enabled:
                service.set_exchange_enabled(
                    svc.store, token_actor(token), exchange.name, enabled=enabled
                )
            return svc.store.exchanges.get(exchange.name)

        return _config(await run_in_threadpool(change))

    return await _answer(work)


@router.delete("/exchange/{name}")
async def exchange_delete(name: ExchangeName, svc: Svc, token: Admin) -> Response:
    """Forget the exchange and its credentials; its bank keeps its entries
    (``exchange.removed``). HMA answers the same for any name."""

    async def work() -> Mapping[str, str]:
        def remove() -> None:
            with contextlib.suppress(HmaError, UnknownExchange):
                exchange = _exchange(svc, name)
                service.remove_exchange(svc.store, token_actor(token), exchange.name)

        await run_in_threadpool(remove)
        return {"message": "Exchange deleted"}

    return await _answer(work)
