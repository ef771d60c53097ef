"""FastAPI dependencies: the app's services and the authenticated token of a request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from hashguard.domain.people import User
from hashguard.domain.tokens import Scope, Token
from hashguard.web.auth import Authenticator
from hashguard.web.services import Services


async def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def require(scope: Scope) -> Callable[..., Awaitable[Token]]:
    """A dependency: the request's token (authenticated by the gate) if it has ``scope``
    and, when it acts for a person, the person's role allows ``scope`` (a token never
    does more than its person: domain.people.SCOPE_PERMISSIONS)."""

    async def authenticated(request: Request) -> Token:
        token: Token = request.state.token  # left there by the gate (gate.py)
        authenticator: Authenticator = request.app.state.services.authenticator
        known, owner = authenticator.cached_owner(token)
        if not known:  # the gate's verification is older than the cache time: ask again
            owner = await run_in_threadpool(authenticator.owner, token)
        return Authenticator.check(token, scope, owner)

    return authenticated


_stats = require(Scope.STATS)


async def scraper(request: Request) -> Token | None:
    """A dependency for ``/metrics``: the request's token if it has the ``stats`` scope
    (its series name banks, list sources and statistics labels, the figures that scope
    reads), or None when ``metrics_public`` opens the route (the gate then asked for no
    token either: gate.guarded)."""
    svc: Services = request.app.state.services
    if svc.settings.metrics_public:
        return None
    return await _stats(request)


async def identified(request: Request) -> tuple[Token, User | None]:
    """A dependency for routes any valid token may call (``/v1/whoami``): the request's
    token (authenticated by the gate) and the person it acts for, if any."""
    token: Token = request.state.token
    authenticator: Authenticator = request.app.state.services.authenticator
    known, owner = authenticator.cached_owner(token)
    if not known:
        owner = await run_in_threadpool(authenticator.owner, token)
    return token, owner
