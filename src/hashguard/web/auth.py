"""Bearer tokens: every route except health needs one, with the right scope; a token that
acts for a person also needs a role that allows that scope (domain.people)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from hashguard.domain.people import SCOPE_PERMISSIONS, User
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
        self,
        tokens: TokenStore,
        owner_disabled: Callable[[int], bool] | None = None,
        *,
        owner_of: Callable[[int], User | None] | None = None,
    ) -> None:
        """``owner_of(token_id)``: the person the token acts for (None: nobody), whose
        role bounds every scope the token uses and whose disabling stops the token.
        ``owner_disabled(token_id)``, when ``owner_of`` is not given: only whether that
        person is disabled (their tokens stop working, like their sessions)."""
        self._tokens = tokens
        self._owner_disabled = owner_disabled
        self._owner_of = owner_of
        self._lock = threading.Lock()
        self._cache: dict[str, _Cached] = {}
        self._touched: dict[int, float] = {}
        #: token id -> (its person, known until): read with the token, kept as long
        self._owners: dict[int, tuple[User | None, float]] = {}

    def identify_cached(self, header: str | None) -> Token | None:
        """``identify`` without touching the store, when the answer is already known (a
        usable token seen within the cache time, last use recorded lately); else None."""
        secret = _secret(header)
        if secret is None:
            return None
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(digest(secret))
            if (
                cached is None
                or cached.until <= now
                or cached.token is None
                or cached.disabled
                or cached.token.tenant_suspended
            ):
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
        if token.tenant_suspended:
            raise ProblemError(
                403, "Tenant suspended", "this token's tenant is suspended: ask the service"
            )
        self._touch(token)
        return token

    @staticmethod
    def check(token: Token, scope: Scope, owner: User | None = None) -> Token:
        """``token`` if it has ``scope`` and, when it acts for ``owner``, the owner's role
        allows that scope; else a 403 problem."""
        if not token.allows(scope):
            raise ProblemError(403, "Not allowed", f"this token lacks the '{scope}' scope")
        if owner is not None and not owner.may_use(scope):
            needs = " or ".join(f"'{p}'" for p in sorted(SCOPE_PERMISSIONS[scope]))
            raise ProblemError(
                403,
                "Not allowed",
                f"this token acts for {owner.name} ({owner.role}), whose role may not use "
                f"the '{scope}' scope (it needs {needs})",
            )
        return token

    def cached_owner(self, token: Token) -> tuple[bool, User | None]:
        """``(True, person)`` when the person ``token`` acts for is known from its recent
        verification (``person`` None: nobody), else ``(False, None)``: ask ``owner``."""
        if self._owner_of is None:
            return True, None
        with self._lock:
            known = self._owners.get(token.id)
        if known is None or known[1] <= time.monotonic():
            return False, None
        return True, known[0]

    def owner(self, token: Token) -> User | None:
        """The person ``token`` acts for (None: nobody), from the store."""
        if self._owner_of is None:
            return None
        person = self._owner_of(token.id)
        with self._lock:
            self._owners[token.id] = (person, time.monotonic() + CACHE_SECONDS)
        return person

    def _lookup(self, secret: str) -> tuple[Token | None, bool]:
        key = digest(secret)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached.until > now:
            return cached.token, cached.disabled
        token = self._tokens.by_secret(secret)
        disabled = False
        if token is not None and token.revoked_at is None:
            if self._owner_of is not None:
                disabled = (person := self.owner(token)) is not None and person.disabled
            elif self._owner_disabled is not None:
                disabled = self._owner_disabled(token.id)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
                self._owners.clear()
            self._cache[key] = _Cached(token, now + CACHE_SECONDS, disabled)
        return token, disabled

    def _touch(self, token: Token) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._touched.get(token.id, -TOUCH_SECONDS) < TOUCH_SECONDS:
                return
            self._touched[token.id] = now
        self._tokens.touch(token.id, datetime.now(UTC))
