"""People who use the review UI and the case API: their roles and what each role may do.

Deny by default: a route names the one permission it needs, and a role has only the
permissions listed here. ``admin`` manages people and deliveries but sees no content
beyond the queue's blurred derivatives; ``auditor`` reads the audit log and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    """Persisted role names; never rename a value."""

    VIEWER = "viewer"
    REVIEWER = "reviewer"
    LEAD = "lead"
    ADMIN = "admin"
    AUDITOR = "auditor"


class Permission(StrEnum):
    #: the queue, case pages with blurred greyscale derivatives, match context
    QUEUE_VIEW = "queue.view"
    #: the original bytes of a case's content, after an explicit, audited reveal
    CASE_REVEAL = "case.reveal"
    #: confirm (the first confirmation), false positive, escalate, take a case
    CASE_DECIDE = "case.decide"
    #: the confirmation that makes a case confirmed, i.e. reportable
    CASE_CONFIRM_FINAL = "case.confirm_final"
    #: give a case to someone else
    CASE_ASSIGN = "case.assign"
    #: dead letters: see them, retry them
    ACTIONS_MANAGE = "actions.manage"
    #: reveals per reviewer (exposure), to look after the team
    EXPOSURE_VIEW = "exposure.view"
    #: extra reveals for a reviewer who reached the exposure limit (a lead's call)
    EXPOSURE_GRANT = "exposure.grant"
    #: entries the flood guard paused: see them, release or tombstone them
    FLOOD_MANAGE = "flood.manage"
    AUDIT_READ = "audit.read"
    USERS_MANAGE = "users.manage"


_REVIEWER = frozenset({Permission.QUEUE_VIEW, Permission.CASE_REVEAL, Permission.CASE_DECIDE})

ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.QUEUE_VIEW}),
    Role.REVIEWER: _REVIEWER,
    Role.LEAD: _REVIEWER
    | {
        Permission.CASE_CONFIRM_FINAL,
        Permission.CASE_ASSIGN,
        Permission.ACTIONS_MANAGE,
        Permission.EXPOSURE_VIEW,
        Permission.EXPOSURE_GRANT,
        Permission.FLOOD_MANAGE,
    },
    Role.ADMIN: frozenset(
        {
            Permission.QUEUE_VIEW,
            Permission.CASE_ASSIGN,
            Permission.ACTIONS_MANAGE,
            Permission.EXPOSURE_VIEW,
            Permission.AUDIT_READ,
            Permission.USERS_MANAGE,
        }
    ),
    Role.AUDITOR: frozenset({Permission.AUDIT_READ}),
}


def allows(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


@dataclass(frozen=True, kw_only=True, slots=True)
class User:
    """A person. ``name`` is their login and the name the audit log and the review
    history use (``user:<name>``). ``oidc_subject`` is ``<issuer> <sub>`` once they
    signed in through OpenID Connect. A disabled person cannot sign in and their
    sessions and tokens stop working."""

    id: int
    name: str
    role: Role
    email: str | None
    display_name: str | None
    has_password: bool
    oidc_subject: str | None
    disabled: bool
    created_at: datetime

    def can(self, permission: Permission) -> bool:
        return not self.disabled and allows(self.role, permission)

    @property
    def actor(self) -> str:
        return f"user:{self.name}"


@dataclass(frozen=True, kw_only=True, slots=True)
class UiSession:
    """A signed-in browser. The cookie holds a random secret; the store keeps only its
    SHA-256 (``id`` is that digest). ``csrf_token`` goes in every form and in the
    ``X-CSRF-Token`` header of scripted requests."""

    id: str
    user_id: int
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    #: how the person signed in: ``password`` or ``oidc``
    method: str
    ip: str | None
    revoked_at: datetime | None

    def live(self, now: datetime, *, idle_seconds: float, absolute_seconds: float) -> bool:
        return (
            self.revoked_at is None
            and (now - self.last_seen_at).total_seconds() < idle_seconds
            and (now - self.created_at).total_seconds() < absolute_seconds
        )
