"""API token changes, each committed with its audit entry (``token.created``,
``token.revoked``) in one transaction (``Store.atomic``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from hashguard.audit import record
from hashguard.domain.audit import AuditAction
from hashguard.domain.people import User
from hashguard.domain.tokens import TENANT_SCOPES, Scope, Token, token_to_json
from hashguard.services.people import find_person
from hashguard.store import Store


class TenantTokenRefused(ValueError):
    """A tenant's token would be more than a tenant's token (another scope, a person)."""


class PersonDisabled(ValueError):
    def __init__(self, user: User) -> None:
        super().__init__(f"{user.name} is disabled: a token for them would not work")
        self.user = user


def subject(token: Token) -> str:
    """A token as the audit log names it."""
    return f"token:{token.id}"


def create_token(
    store: Store,
    actor: str,
    name: str,
    scopes: Iterable[Scope],
    *,
    expires_at: datetime | None = None,
    user: str | None = None,
    tenant: str | None = None,
) -> tuple[Token, str, User | None]:
    """A new token, its secret (shown once, never kept) and the person it acts for
    (``user``) (``token.created``). A ``tenant``'s token may only look hashes up (and
    read its tenant's own use) and acts for no person. Raises ``UnknownPerson``,
    ``PersonDisabled``, ``UnknownTenant``, ``TenantTokenRefused``."""
    scopes = frozenset(scopes)
    if tenant is not None:
        extra = sorted(str(s) for s in scopes if str(s) not in TENANT_SCOPES)
        if extra or not scopes:
            raise TenantTokenRefused(
                f"a tenant's token may only have the {', '.join(sorted(TENANT_SCOPES))} scope"
                + (f" (not {', '.join(extra)})" if extra else "")
            )
        if user is not None:
            raise TenantTokenRefused("a tenant's token acts for no person: drop --user")
    owner = find_person(store, user) if user is not None else None
    if owner is not None and owner.disabled:
        raise PersonDisabled(owner)
    with store.atomic() as unit:  # never a token without the person it acts for
        tenant_id = unit.tenants.named(tenant).id if tenant is not None else None
        token, secret = unit.tokens.create(name, scopes, expires_at=expires_at, tenant_id=tenant_id)
        if owner is not None:
            unit.people.set_token_owner(token.id, owner.id)
        record(
            unit,
            actor,
            AuditAction.TOKEN_CREATED,
            subject(token),
            **token_to_json(token, user=owner.name if owner else None),
        )
    return token, secret, owner


def revoke_token(store: Store, actor: str, token_id: int) -> Token:
    """Revoke a token (``token.revoked``). Raises ``UnknownToken``."""
    with store.atomic() as unit:
        token = unit.tokens.revoke(token_id)
        record(unit, actor, AuditAction.TOKEN_REVOKED, subject(token), name=token.name)
    return token
