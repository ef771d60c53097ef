"""People who use the review UI and the API: their roles and what each role may do.

Deny by default: a route names the one permission it needs, and a role has only the
permissions listed here. ``admin`` manages people, deliveries, banks and scans but sees
no content beyond the queue's blurred derivatives (it sees reports' states; submitting
one is a lead's call); ``auditor`` reads the audit log and the aggregate statistics,
nothing else. An API token that acts for a person (``tokens create --user``) uses a
scope only when the person's role has one of the permissions ``SCOPE_PERMISSIONS`` names
for it: the token never does more than its person.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from hashguard.domain.tokens import Scope

#: People's names (users, reviewers, assignees): what a login or an account name looks like.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$"


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
    #: hotline referrals: open a task for a confirmed case, mark it done with the
    #: hotline's reference, cancel it (the people who work cases: reviewers and leads)
    REFERRALS_MANAGE = "referrals.manage"
    #: dead letters: see them, retry them
    ACTIONS_MANAGE = "actions.manage"
    #: reveals per reviewer (exposure), to look after the team
    EXPOSURE_VIEW = "exposure.view"
    #: extra reveals for a reviewer who reached the exposure limit (a lead's call)
    EXPOSURE_GRANT = "exposure.grant"
    #: entries the flood guard paused: see them, release or tombstone them
    FLOOD_MANAGE = "flood.manage"
    #: reports to NCMEC and the like: their states, report ids, steps and dead letters
    #: (never a file's content)
    REPORTS_VIEW = "reports.view"
    #: submit a confirmed case's report (or resume a waiting one), send a failed one
    #: again, retract one
    REPORTS_SUBMIT = "reports.submit"
    AUDIT_READ = "audit.read"
    USERS_MANAGE = "users.manage"
    #: banks' settings, provenance and counts (never their hashes)
    BANKS_READ = "banks.read"
    #: create, configure, import into, edit and delete banks
    BANKS_MANAGE = "banks.manage"
    #: submit content to be hashed and matched (``POST /v1/scan``)
    CONTENT_SCAN = "content.scan"
    #: look hashes up in the banks (``POST /v1/lookup``)
    HASHES_LOOKUP = "hashes.lookup"
    #: send DSA Art. 16 notices through the API (``POST /v1/notices``)
    NOTICES_SUBMIT = "notices.submit"
    #: send uploaders' appeals (DSA Art. 20) through the API (``/v1/cases/{id}/appeals``)
    APPEALS_SUBMIT = "appeals.submit"
    #: what only the ``admin`` scope itself opens: scan runs over server folders
    SERVER_ADMIN = "server.admin"
    #: the aggregate statistics and transparency figures (counts, never a case)
    STATS_VIEW = "stats.view"


_REVIEWER = frozenset(
    {
        Permission.QUEUE_VIEW,
        Permission.CASE_REVEAL,
        Permission.CASE_DECIDE,
        Permission.REFERRALS_MANAGE,
    }
)

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
        Permission.BANKS_READ,
        Permission.REPORTS_VIEW,
        Permission.REPORTS_SUBMIT,
        Permission.NOTICES_SUBMIT,
        Permission.APPEALS_SUBMIT,
        Permission.STATS_VIEW,
    },
    Role.ADMIN: frozenset(
        {
            Permission.QUEUE_VIEW,
            Permission.CASE_ASSIGN,
            Permission.ACTIONS_MANAGE,
            Permission.EXPOSURE_VIEW,
            Permission.AUDIT_READ,
            Permission.REPORTS_VIEW,
            Permission.USERS_MANAGE,
            Permission.BANKS_READ,
            Permission.BANKS_MANAGE,
            Permission.CONTENT_SCAN,
            Permission.HASHES_LOOKUP,
            Permission.NOTICES_SUBMIT,
            Permission.APPEALS_SUBMIT,
            Permission.SERVER_ADMIN,
            Permission.STATS_VIEW,
        }
    ),
    Role.AUDITOR: frozenset({Permission.AUDIT_READ, Permission.STATS_VIEW}),
}

#: What a route's scope asks of the person a token acts for: one of these permissions.
#: (The case routes then check the step itself: confirming needs ``case.decide``...)
SCOPE_PERMISSIONS: Mapping[Scope, frozenset[Permission]] = {
    Scope.SCAN: frozenset({Permission.CONTENT_SCAN}),
    Scope.LOOKUP: frozenset({Permission.HASHES_LOOKUP}),
    Scope.BANKS_READ: frozenset({Permission.BANKS_READ}),
    Scope.BANKS_WRITE: frozenset({Permission.BANKS_MANAGE}),
    Scope.CASES_READ: frozenset({Permission.QUEUE_VIEW}),
    Scope.CASES_REVIEW: frozenset({Permission.CASE_DECIDE, Permission.CASE_ASSIGN}),
    Scope.NOTICES: frozenset({Permission.NOTICES_SUBMIT}),
    Scope.APPEALS: frozenset({Permission.APPEALS_SUBMIT}),
    Scope.STATS: frozenset({Permission.STATS_VIEW}),
    Scope.ADMIN: frozenset({Permission.SERVER_ADMIN}),
}


def allows(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def role_uses(role: Role, scope: Scope) -> bool:
    """Whether a token acting for a person of ``role`` may use ``scope``."""
    return bool(SCOPE_PERMISSIONS[scope] & ROLE_PERMISSIONS[role])


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

    def may_use(self, scope: Scope) -> bool:
        """Whether a token acting for this person may use ``scope`` (see SCOPE_PERMISSIONS)."""
        return not self.disabled and role_uses(self.role, scope)

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


def user_to_json(user: User) -> dict[str, Any]:
    """The JSON shape of a person (listings, audit entries): never a password hash."""
    return {
        "id": user.id,
        "name": user.name,
        "role": str(user.role),
        "email": user.email,
        "display_name": user.display_name,
        "has_password": user.has_password,
        "sso_bound": user.oidc_subject is not None,
        "disabled": user.disabled,
        "created_at": user.created_at.isoformat(),
    }
