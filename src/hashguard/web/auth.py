"""Bearer tokens: every route except health needs one, with the right scope."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from hashguard.domain.tokens import Scope, Token
from hashguard.store.tokens import TokenStore, digest
from hashguard.web.problems import ProblemError

#: A verified token is trusted this long before the store is asked again (so a
#: revocation takes effect within this many seconds on every server).
CACHE_SECONDS = 2.0
#: last_used_at is written at most this often per token.
TOUCH_SECONDS = 60.0


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, "Not authenticated", detail, {"WWW-Authenticate": "Bearer"})


def _secret(header: str | None) -> str | None:
    kind, _, secret = (header or "").partition(" ")
    return secret.strip() if kind.lower() == "bearer" and secret.strip() else None


@dataclass(frozen=True, slots=True)
class _Cached:
    token: Token | None
    until: float
    #: the token acts for a person who is disabled: it no longer works
    disabled: bool = False


class Authenticator:
    """Turns an Authorization header into a usable token, or a 401/403 problem."""

    def __init__(
        self, tokens: TokenStore, owner_disabled: Callable[[int], bool] | None = None
    ) -> None:
        """``owner_disabled(token_id)``: whether the token acts for a disabled person
        (whose tokens stop working, like their sessions)."""
        self._tokens = tokens
        self._owner_disabled = owner_disabled
        self._lock = threading.Lock()
        self._cache: dict[str, _Cached] = {}
        self._touched: dict[int, float] = {}

    def identify_cached(self, header: str | None) -> Token | None:
        """``identify`` without touching the store, when the answer is already known (a
        usable token seen within the cache time, last use recorded lately); else None."""
        secret = _secret(header)
        if secret is None:
            return None
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(digest(secret))
            if cached is None or cached.until <= now or cached.token is None or cached.disabled:
                return None
            token = cached.token
            if now - self._touched.get(token.id, -TOUCH_SECONDS) >= TOUCH_SECONDS:
                return None
        return token if token.usable(datetime.now(UTC)) else None

    def identify(self, header: str | None) -> Token:
        """The usable token named by an Authorization header, or a 401 problem."""
        if not header:
            raise _unauthorized("missing bearer token (Authorization: Bearer <token>)")
        kind, _, secret = header.partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            raise _unauthorized("the Authorization header must be 'Bearer <token>'")
        token, disabled = self._lookup(secret.strip())
        now = datetime.now(UTC)
        if token is None:
            raise _unauthorized("unknown token")
        if token.revoked_at is not None:
            raise _unauthorized("this token was revoked")
        if disabled:
            raise _unauthorized("this token acts for a person who is disabled")
        if not token.usable(now):
            raise _unauthorized("this token has expired")
        self._touch(token)
        return token

    @staticmethod
    def check(token: Token, scope: Scope) -> Token:
        """``token`` if it has ``scope``, else a 403 problem."""
        if not token.allows(scope):
            raise ProblemError(403, "Not allowed", f"this token lacks the '{scope}' scope")
        return token

    def _lookup(self, secret: str) -> tuple[Token | None, bool]:
        key = digest(secret)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached.until > now:
            return cached.token, cached.disabled
        token = self._tokens.by_secret(secret)
        disabled = bool(
            token is not None
            and token.revoked_at is None
            and self._owner_disabled is not None
            and self._owner_disabled(token.id)
        )
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = _Cached(token, now + CACHE_SECONDS, disabled)
        return token, disabled

    def _touch(self, token: Token) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._touched.get(token.id, -TOUCH_SECONDS) < TOUCH_SECONDS:
                return
            self._touched[token.id] = now
        self._tokens.touch(token.id, datetime.now(UTC))
