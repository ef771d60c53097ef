"""FastAPI dependencies: the app's services and the authenticated token of a request."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Header, Request

from hashguard.domain.tokens import Scope, Token
from hashguard.web.services import Services


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def require(scope: Scope) -> Callable[..., Token]:
    """A dependency that authenticates the bearer token and checks ``scope``."""

    def authenticated(
        svc: Services = Depends(services),  # noqa: B008 - FastAPI's dependency idiom
        authorization: str | None = Header(default=None, include_in_schema=False),
    ) -> Token:
        return svc.authenticator.authenticate(authorization, scope)

    return authenticated
