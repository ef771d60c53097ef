"""Secret path prefixes for HMA clients that cannot send a token: ``/hma/s/<secret>/…``.

Each configured secret (``hma_path_secrets``) stands for one token: the prefix is cut
from the path and the token put in the Authorization header before the gate sees the
request, so the call is authenticated, scoped, rate-limited and audited as that token.
An unknown secret is a 404, as any unknown path."""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

PREFIX = "/hma/s/"


class SecretPathMiddleware:
    def __init__(self, app: ASGIApp, secrets: dict[str, SecretStr]) -> None:
        self.app = app
        self._secrets = [(key.encode(), token) for key, token in secrets.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        secret, _, rest = path[len(PREFIX) :].partition("/")
        token = self._token(secret.encode())
        if token is None or not rest:
            await JSONResponse({"message": "not found"}, status_code=404)(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
        headers.append((b"authorization", f"Bearer {token.get_secret_value()}".encode()))
        inner = dict(scope, path=f"/hma/{rest}", raw_path=f"/hma/{rest}".encode(), headers=headers)
        await self.app(inner, receive, send)

    def _token(self, given: bytes) -> SecretStr | None:
        found = None
        for key, token in self._secrets:  # every key compared: no timing of which one
            if hmac.compare_digest(key, given):
                found = token
        return found
