"""API token persistence: created with a random secret shown once, kept as its SHA-256."""

from __future__ import annotations

import builtins
import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, Select, insert, select, update

from hashguard.domain.tenants import TenantState
from hashguard.domain.tokens import Scope, Token
from hashguard.store._util import aware, now
from hashguard.store.schema import api_tokens, tenants

#: Prefix of every secret, so secret scanners and people recognise a leaked token.
PREFIX = "hgt_"


class UnknownToken(LookupError):
    pass


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _token(row: Row[Any]) -> Token:
    created = aware(row.created_at)
    assert created is not None
    return Token(
        id=row.id,
        name=row.name,
        scopes=frozenset(Scope(s) for s in row.scopes),
        created_at=created,
        expires_at=aware(row.expires_at),
        revoked_at=aware(row.revoked_at),
        last_used_at=aware(row.last_used_at),
        tenant=row.tenant,
        tenant_suspended=row.tenant_state == str(TenantState.SUSPENDED),
    )


def _select() -> Select[Any]:
    """Tokens with the name and state of their tenant, if any."""
    return select(
        api_tokens,
        tenants.c.name.label("tenant"),
        tenants.c.state.label("tenant_state"),
    ).select_from(api_tokens.outerjoin(tenants, api_tokens.c.tenant_id == tenants.c.id))


class TokenStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(
        self,
        name: str,
        scopes: Iterable[Scope],
        *,
        expires_at: datetime | None = None,
        tenant_id: int | None = None,
    ) -> tuple[Token, str]:
        """A new token and its secret; the secret is not kept and cannot be shown again."""
        secret = PREFIX + secrets.token_urlsafe(32)
        with self._engine.begin() as conn:
            token_id = conn.execute(
                insert(api_tokens)
                .values(
                    name=name,
                    secret_sha256=digest(secret),
                    scopes=sorted(str(s) for s in set(scopes)),
                    created_at=now(),
                    expires_at=expires_at,
                    tenant_id=tenant_id,
                )
                .returning(api_tokens.c.id)
            ).scalar_one()
        return self.get(token_id), secret

    def get(self, token_id: int) -> Token:
        with self._engine.connect() as conn:
            row = conn.execute(_select().where(api_tokens.c.id == token_id)).first()
        if row is None:
            raise UnknownToken(f"no token #{token_id}")
        return _token(row)

    def by_secret(self, secret: str) -> Token | None:
        """The token with this secret, usable or not (the caller checks)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                _select().where(api_tokens.c.secret_sha256 == digest(secret))
            ).first()
        return None if row is None else _token(row)

    def list(self) -> list[Token]:
        with self._engine.connect() as conn:
            return [_token(r) for r in conn.execute(_select().order_by(api_tokens.c.id))]

    def of_tenant(self, tenant_id: int) -> builtins.list[Token]:
        """The tokens bound to a tenant (what its own view lists)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                _select().where(api_tokens.c.tenant_id == tenant_id).order_by(api_tokens.c.id)
            )
            return [_token(r) for r in rows]

    def revoke(self, token_id: int) -> Token:
        with self._engine.begin() as conn:
            done = conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now())
            )
        token = self.get(token_id)
        if done.rowcount == 0 and token.revoked_at is None:
            raise UnknownToken(f"no token #{token_id}")
        return token

    def touch(self, token_id: int, when: datetime) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=when)
            )
