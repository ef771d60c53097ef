"""People, their UI sessions, failed sign-ins, pending OpenID Connect sign-ins, reveals."""

from __future__ import annotations

import builtins
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from hashguard.domain.people import Role, UiSession, User
from hashguard.store._util import aware, now, stamp, utc
from hashguard.store.schema import (
    api_tokens,
    login_failures,
    oidc_pending,
    reveals,
    ui_sessions,
    users,
)


class UnknownUser(LookupError):
    def __init__(self, ref: object) -> None:
        super().__init__(f"no user {ref}")


class UserExists(ValueError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"a user with this {detail} exists already")


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


#: "leave this field as it is" in ``update_user``
KEEP: Any = _Keep()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _user(row: Row[Any]) -> User:
    return User(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        email=row.email,
        display_name=row.display_name,
        has_password=row.password_hash is not None,
        oidc_subject=row.oidc_subject,
        disabled=bool(row.disabled),
        created_at=stamp(row.created_at),
    )


def _session(row: Row[Any]) -> UiSession:
    return UiSession(
        id=row.id,
        user_id=row.user_id,
        csrf_token=row.csrf_token,
        created_at=stamp(row.created_at),
        last_seen_at=stamp(row.last_seen_at),
        method=row.method,
        ip=row.ip,
        revoked_at=aware(row.revoked_at),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class PendingOidc:
    state: str
    nonce: str
    code_verifier: str
    return_to: str | None
    created_at: datetime


class PeopleStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- people ---------------------------------------------------------------------

    def create_user(
        self,
        name: str,
        role: Role,
        *,
        email: str | None = None,
        display_name: str | None = None,
        password_hash: str | None = None,
        oidc_subject: str | None = None,
    ) -> User:
        at = now()
        try:
            with self._engine.begin() as conn:
                user_id = conn.execute(
                    insert(users)
                    .values(
                        name=name,
                        role=str(role),
                        email=email,
                        display_name=display_name,
                        password_hash=password_hash,
                        oidc_subject=oidc_subject,
                        disabled=False,
                        created_at=at,
                        updated_at=at,
                    )
                    .returning(users.c.id)
                ).scalar_one()
        except IntegrityError:
            raise UserExists("name, email or OpenID subject") from None
        return self.get_user(user_id)

    def _one(self, where: Any, ref: object) -> User:
        found = self._find(where)
        if found is None:
            raise UnknownUser(ref)
        return found

    def _find(self, where: Any) -> User | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(users).where(where)).first()
        return None if row is None else _user(row)

    def get_user(self, user_id: int) -> User:
        return self._one(users.c.id == user_id, f"#{user_id}")

    def find_user(self, name: str) -> User | None:
        return self._find(users.c.name == name)

    def find_by_email(self, email: str) -> User | None:
        return self._find(func.lower(users.c.email) == email.lower())

    def find_by_oidc(self, subject: str) -> User | None:
        return self._find(users.c.oidc_subject == subject)

    def list_users(self) -> builtins.list[User]:
        with self._engine.connect() as conn:
            return [_user(r) for r in conn.execute(select(users).order_by(users.c.name))]

    def password_hash(self, user_id: int) -> str | None:
        with self._engine.connect() as conn:
            found: str | None = conn.execute(
                select(users.c.password_hash).where(users.c.id == user_id)
            ).scalar_one_or_none()
        return found

    def update_user(
        self,
        user_id: int,
        *,
        role: Role = KEEP,
        email: str | None = KEEP,
        display_name: str | None = KEEP,
        password_hash: str | None = KEEP,
        oidc_subject: str | None = KEEP,
        disabled: bool = KEEP,
    ) -> User:
        fields = {
            "role": role if role is KEEP else str(role),
            "email": email,
            "display_name": display_name,
            "password_hash": password_hash,
            "oidc_subject": oidc_subject,
            "disabled": disabled,
        }
        values = {k: v for k, v in fields.items() if v is not KEEP}
        try:
            with self._engine.begin() as conn:
                done = conn.execute(
                    update(users).where(users.c.id == user_id).values(updated_at=now(), **values)
                )
        except IntegrityError:
            raise UserExists("email or OpenID subject") from None
        if done.rowcount == 0:
            raise UnknownUser(f"#{user_id}")
        return self.get_user(user_id)

    def token_owner(self, token_id: int) -> User | None:
        """The person a token acts for, if any."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(users)
                .join(api_tokens, api_tokens.c.user_id == users.c.id)
                .where(api_tokens.c.id == token_id)
            ).first()
        return None if row is None else _user(row)

    def set_token_owner(self, token_id: int, user_id: int | None) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(api_tokens).where(api_tokens.c.id == token_id).values(user_id=user_id)
            )

    # -- sessions -------------------------------------------------------------------

    def create_session(self, user_id: int, *, method: str, ip: str | None) -> tuple[UiSession, str]:
        """A new session and the cookie secret that names it (kept only as its digest)."""
        secret = secrets.token_urlsafe(32)
        at = now()
        session_id = _digest(secret)
        with self._engine.begin() as conn:
            conn.execute(
                insert(ui_sessions).values(
                    id=session_id,
                    user_id=user_id,
                    csrf_token=secrets.token_urlsafe(32),
                    method=method,
                    ip=ip,
                    created_at=at,
                    last_seen_at=at,
                )
            )
        found = self.session(session_id)
        assert found is not None
        return found, secret

    def session(self, session_id: str) -> UiSession | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(ui_sessions).where(ui_sessions.c.id == session_id)).first()
        return None if row is None else _session(row)

    def session_by_secret(self, secret: str) -> UiSession | None:
        return self.session(_digest(secret))

    def touch_session(self, session_id: str, when: datetime) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(ui_sessions).where(ui_sessions.c.id == session_id).values(last_seen_at=when)
            )

    def revoke_session(self, session_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(ui_sessions)
                .where(ui_sessions.c.id == session_id, ui_sessions.c.revoked_at.is_(None))
                .values(revoked_at=now())
            )

    def revoke_user_sessions(self, user_id: int) -> int:
        with self._engine.begin() as conn:
            done = conn.execute(
                update(ui_sessions)
                .where(ui_sessions.c.user_id == user_id, ui_sessions.c.revoked_at.is_(None))
                .values(revoked_at=now())
            )
        return done.rowcount

    def delete_sessions_before(self, cutoff: datetime) -> int:
        """Forget sessions last seen before ``cutoff`` (expired for good)."""
        with self._engine.begin() as conn:
            done = conn.execute(delete(ui_sessions).where(ui_sessions.c.last_seen_at < cutoff))
        return done.rowcount

    # -- failed sign-ins --------------------------------------------------------------

    def record_login_failure(self, keys: Iterable[str], at: datetime) -> None:
        rows = [{"key": key, "at": at} for key in keys]
        if rows:
            with self._engine.begin() as conn:
                conn.execute(insert(login_failures), rows)

    def login_failures_since(self, key: str, since: datetime) -> int:
        with self._engine.connect() as conn:
            count: int = conn.execute(
                select(func.count())
                .select_from(login_failures)
                .where(login_failures.c.key == key, login_failures.c.at >= since)
            ).scalar_one()
        return count

    def clear_login_failures(self, key: str, *, before: datetime | None = None) -> None:
        """Forget ``key``'s failures (all of them, or those before ``before``)."""
        where = login_failures.c.key == key
        if before is not None:
            where = where & (login_failures.c.at < before)
        with self._engine.begin() as conn:
            conn.execute(delete(login_failures).where(where))

    def delete_login_failures_before(self, cutoff: datetime) -> int:
        with self._engine.begin() as conn:
            done = conn.execute(delete(login_failures).where(login_failures.c.at < cutoff))
        return done.rowcount

    # -- OpenID Connect sign-ins under way ----------------------------------------------

    def put_oidc_pending(self, pending: PendingOidc) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                insert(oidc_pending).values(
                    state=pending.state,
                    nonce=pending.nonce,
                    code_verifier=pending.code_verifier,
                    return_to=pending.return_to,
                    created_at=pending.created_at,
                )
            )

    def take_oidc_pending(self, state: str) -> PendingOidc | None:
        """The sign-in started with ``state``, removed: a state is used once."""
        with self._engine.begin() as conn:
            row = conn.execute(select(oidc_pending).where(oidc_pending.c.state == state)).first()
            if row is None:
                return None
            done = conn.execute(delete(oidc_pending).where(oidc_pending.c.state == state))
            if done.rowcount != 1:  # taken by a concurrent callback
                return None
        return PendingOidc(
            state=row.state,
            nonce=row.nonce,
            code_verifier=row.code_verifier,
            return_to=row.return_to,
            created_at=stamp(row.created_at),
        )

    def delete_oidc_pending_before(self, cutoff: datetime) -> int:
        with self._engine.begin() as conn:
            done = conn.execute(delete(oidc_pending).where(oidc_pending.c.created_at < cutoff))
        return done.rowcount

    # -- reveals ----------------------------------------------------------------------

    def record_reveal(
        self,
        user_id: int,
        case_id: int,
        *,
        session_id: str | None,
        at: datetime,
        frame_ms: int | None = None,
    ) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                insert(reveals).values(
                    user_id=user_id,
                    case_id=case_id,
                    session_id=session_id,
                    at=at,
                    frame_ms=frame_ms,
                )
            )

    def reveals_since(self, user_id: int, since: datetime) -> int:
        with self._engine.connect() as conn:
            count: int = conn.execute(
                select(func.count())
                .select_from(reveals)
                .where(reveals.c.user_id == user_id, reveals.c.at >= since)
            ).scalar_one()
        return count

    def last_reveal(
        self, user_id: int, case_id: int, session_id: str, *, frame_ms: int | None = None
    ) -> datetime | None:
        """When this session last revealed this case's content (the original may be
        served then), or with ``frame_ms`` that frame of its video: a frame's reveal
        opens that frame only, never the whole content."""
        frame = reveals.c.frame_ms.is_(None) if frame_ms is None else reveals.c.frame_ms == frame_ms
        with self._engine.connect() as conn:
            at = conn.execute(
                select(func.max(reveals.c.at)).where(
                    reveals.c.user_id == user_id,
                    reveals.c.case_id == case_id,
                    reveals.c.session_id == session_id,
                    frame,
                )
            ).scalar_one_or_none()
        return aware(at)

    def revealed_frames(
        self, user_id: int, case_id: int, session_id: str, since: datetime
    ) -> set[int]:
        """The frames of this case's video (by time in ms) this session revealed after
        ``since``."""
        with self._engine.connect() as conn:
            found = conn.execute(
                select(reveals.c.frame_ms).where(
                    reveals.c.user_id == user_id,
                    reveals.c.case_id == case_id,
                    reveals.c.session_id == session_id,
                    reveals.c.frame_ms.is_not(None),
                    reveals.c.at >= utc(since),
                )
            ).scalars()
            return {int(ms) for ms in found}

    def exposure(self, since: datetime) -> dict[str, int]:
        """Reveals per person since ``since``, by name (everyone who revealed anything)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(users.c.name, func.count(reveals.c.id))
                .join(users, users.c.id == reveals.c.user_id)
                .where(reveals.c.at >= since)
                .group_by(users.c.name)
                .order_by(users.c.name)
            ).all()
        return {str(name): int(count) for name, count in rows}
