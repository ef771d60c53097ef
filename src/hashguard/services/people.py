"""Changes to the people who sign in, each committed with its audit entry (user.created,
user.updated) in one transaction (``Store.atomic``)."""

from __future__ import annotations

from typing import Any

from hashguard.audit import record
from hashguard.domain.audit import AuditAction
from hashguard.domain.people import Role, User, user_to_json
from hashguard.store import Store
from hashguard.store.people import KEEP


class UnknownPerson(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"there is no person named {name!r}")
        self.name = name


def find_person(store: Store, name: str) -> User:
    """The person named ``name``; ``UnknownPerson`` if there is none."""
    user = store.people.find_user(name)
    if user is None:
        raise UnknownPerson(name)
    return user


def add_person(
    store: Store,
    actor: str,
    name: str,
    role: Role,
    *,
    email: str | None = None,
    display_name: str | None = None,
    password_hash: str | None = None,
) -> User:
    """A new person (``user.created``). Raises ``UserExists``."""
    with store.atomic() as unit:
        user = unit.people.create_user(
            name, role, email=email, display_name=display_name, password_hash=password_hash
        )
        record(unit, actor, AuditAction.USER_CREATED, user.actor, **user_to_json(user))
    return user


def update_person(
    store: Store,
    actor: str,
    user: User,
    *,
    role: Role = KEEP,
    password_hash: str | None = KEEP,
    disabled: bool = KEEP,
) -> User:
    """Change a person (``user.updated`` naming what changed; a new password only as
    ``password_changed``)."""
    shown: dict[str, Any] = {}
    if role is not KEEP:
        shown["role"] = str(role)
    if password_hash is not KEEP:
        shown["password_changed"] = True
    if disabled is not KEEP:
        shown["disabled"] = disabled
    with store.atomic() as unit:
        updated = unit.people.update_user(
            user.id, role=role, password_hash=password_hash, disabled=disabled
        )
        record(unit, actor, AuditAction.USER_UPDATED, user.actor, **shown)
    return updated


def disable_person(store: Store, actor: str, user: User) -> int:
    """Stop a person signing in (``user.updated`` unless they were disabled already) and
    end their sessions; returns how many were ended."""
    with store.atomic() as unit:
        if not user.disabled:
            update_person(unit, actor, user, disabled=True)
        return unit.people.revoke_user_sessions(user.id)


def enable_person(store: Store, actor: str, user: User) -> None:
    """Let a disabled person sign in again (``user.updated`` if they were disabled)."""
    if user.disabled:
        update_person(store, actor, user, disabled=False)
