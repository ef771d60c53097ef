"""Sealed credentials of remote matchers: one row per adapter name and key.

Values arrive sealed (``remote.secrets.seal_secret``) and leave sealed; the store never
sees them in clear. Setting or removing one records its audit event in the same
transaction, naming the adapter and the key, never the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Engine, delete, insert, select, update

from hashguard.domain.audit import AuditAction
from hashguard.store.audit import append_event
from hashguard.store.schema import remote_secrets


class UnknownRemoteSecret(LookupError):
    def __init__(self, name: str, key: str) -> None:
        super().__init__(f"no secret {key!r} is stored for remote matcher {name!r}")


class RemoteSecretStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def put(self, name: str, key: str, sealed: bytes, *, actor: str, at: datetime) -> bool:
        """Store (or replace) the sealed value of ``name``'s ``key``; True if it replaced
        one. Audited as ``remote.secret_set``."""
        with self._engine.begin() as conn:
            replaced = conn.execute(
                update(remote_secrets)
                .where(remote_secrets.c.name == name, remote_secrets.c.key == key)
                .values(sealed=sealed, updated_at=at)
            ).rowcount
            if not replaced:
                conn.execute(
                    insert(remote_secrets).values(name=name, key=key, sealed=sealed, updated_at=at)
                )
            append_event(
                conn,
                actor,
                AuditAction.REMOTE_SECRET_SET,
                f"remote:{name}",
                {"key": key, "replaced": bool(replaced)},
                at=at,
            )
        return bool(replaced)

    def remove(self, name: str, key: str, *, actor: str, at: datetime) -> None:
        """Forget ``name``'s ``key``; ``UnknownRemoteSecret`` when none is stored."""
        with self._engine.begin() as conn:
            gone = conn.execute(
                delete(remote_secrets).where(
                    remote_secrets.c.name == name, remote_secrets.c.key == key
                )
            ).rowcount
            if not gone:
                raise UnknownRemoteSecret(name, key)
            append_event(
                conn,
                actor,
                AuditAction.REMOTE_SECRET_REMOVED,
                f"remote:{name}",
                {"key": key},
                at=at,
            )

    def keys(self) -> dict[str, list[str]]:
        """The keys stored for each adapter name (never their values)."""
        query = select(remote_secrets.c.name, remote_secrets.c.key).order_by(
            remote_secrets.c.name, remote_secrets.c.key
        )
        found: dict[str, list[str]] = {}
        with self._engine.connect() as conn:
            for row in conn.execute(query):
                found.setdefault(row.name, []).append(row.key)
        return found

    def sealed(self, name: str) -> Mapping[str, bytes]:
        """``name``'s sealed values by key (empty when none is stored)."""
        query = select(remote_secrets.c.key, remote_secrets.c.sealed).where(
            remote_secrets.c.name == name
        )
        with self._engine.connect() as conn:
            return {row.key: bytes(row.sealed) for row in conn.execute(query)}
