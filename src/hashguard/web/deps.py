"""FastAPI dependencies: the app's services and the authenticated token of a request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from hashguard.domain.tokens import Scope, Token
from hashguard.web.auth import Authenticator
from hashguard.web.services import Services


async def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def require(scope: Scope) -> Callable[..., Awaitable[Token]]:
    """A dependency: the request's token (authenticated by the gate) if it has ``scope``."""

    async def authenticated(request: Request) -> Token:
        token: Token = request.state.token  # left there by the gate (gate.py)
        return Authenticator.check(token, scope)

    return authenticated
