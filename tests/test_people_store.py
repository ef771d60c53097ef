"""The people store on both engines: accounts, sessions and their timeouts, failed
sign-ins, one-use OpenID Connect states; and the server's housekeeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hashguard.domain.people import ROLE_PERMISSIONS, Permission, Role
from hashguard.jobs.builtin import forget_ended_sign_ins
from hashguard.settings import Settings
from hashguard.store import Store
from hashguard.store.people import PendingOidc, UnknownUser, UserExists


def test_accounts(store: Store) -> None:
    people = store.people
    alice = people.create_user("alice", Role.REVIEWER, email="Alice@Example.org", password_hash="h")
    assert (alice.role, alice.has_password, alice.disabled, alice.actor) == (
        Role.REVIEWER,
        True,
        False,
        "user:alice",
    )
    assert people.find_by_email("alice@example.org") == alice
    assert people.password_hash(alice.id) == "h"
    with pytest.raises(UserExists):
        people.create_user("alice", Role.VIEWER)
    lead = people.update_user(alice.id, role=Role.LEAD, password_hash=None)
    assert (lead.role, lead.has_password, lead.email) == (Role.LEAD, False, "Alice@Example.org")
    assert lead.can(Permission.CASE_CONFIRM_FINAL)
    off = people.update_user(alice.id, disabled=True)
    assert not off.can(Permission.QUEUE_VIEW)  # a disabled person can do nothing
    with pytest.raises(UnknownUser):
        people.get_user(999)
    assert [u.name for u in people.list_users()] == ["alice"]


def test_roles_deny_by_default() -> None:

    # an auditor reads the audit log and the (aggregate) statistics, nothing else
    assert ROLE_PERMISSIONS[Role.AUDITOR] == {Permission.AUDIT_READ, Permission.STATS_VIEW}
    assert Permission.CASE_REVEAL not in ROLE_PERMISSIONS[Role.ADMIN]  # no exposure needed
    assert Permission.CASE_CONFIRM_FINAL not in ROLE_PERMISSIONS[Role.REVIEWER]
    assert ROLE_PERMISSIONS[Role.VIEWER] == {Permission.QUEUE_VIEW}


def test_sessions_and_timeouts(store: Store) -> None:
    people = store.people
    user = people.create_user("bob", Role.VIEWER)
    session, secret = people.create_session(user.id, method="password", ip="127.0.0.1")
    assert session.id != secret
    assert len(session.csrf_token) >= 32
    assert people.session_by_secret(secret) == session
    assert people.session_by_secret(secret + "x") is None
    start = session.created_at
    live = {"idle_seconds": 60.0, "absolute_seconds": 3600.0}
    assert session.live(start + timedelta(seconds=59), **live)
    assert not session.live(start + timedelta(seconds=61), **live)  # idle
    people.touch_session(session.id, start + timedelta(seconds=50))
    touched = people.session(session.id)
    assert touched is not None
    assert touched.live(start + timedelta(seconds=100), **live)
    assert not touched.live(start + timedelta(hours=2), idle_seconds=1e9, absolute_seconds=3600)
    assert people.revoke_user_sessions(user.id) == 1
    revoked = people.session(session.id)
    assert revoked is not None
    assert not revoked.live(start, **live)


def test_failures_and_oidc_states(store: Store) -> None:
    people = store.people
    now = datetime.now(UTC)
    people.record_login_failure(["user:x", "ip:1.2.3.4"], now - timedelta(minutes=20))
    people.record_login_failure(["user:x"], now)
    assert people.login_failures_since("user:x", now - timedelta(minutes=15)) == 1
    assert people.login_failures_since("ip:1.2.3.4", now - timedelta(hours=1)) == 1
    people.clear_login_failures("user:x")
    assert people.login_failures_since("user:x", now - timedelta(hours=1)) == 0

    pending = PendingOidc(
        state="s1", nonce="n", code_verifier="v" * 43, return_to="/ui/", created_at=now
    )
    people.put_oidc_pending(pending)
    assert people.take_oidc_pending("s1") == pending
    assert people.take_oidc_pending("s1") is None  # one use
    assert people.exposure(now - timedelta(days=1)) == {}  # reveals: see test_ui_pages


def test_housekeeping_forgets_what_has_ended(store: Store) -> None:
    people = store.people
    settings = Settings(ui_session_absolute_hours=1, login_lockout_minutes=15)
    user = people.create_user("carol", Role.REVIEWER)
    session, _ = people.create_session(user.id, method="password", ip=None)
    now = datetime.now(UTC)
    people.record_login_failure(["user:carol"], now - timedelta(minutes=30))
    people.record_login_failure(["user:carol"], now)
    people.put_oidc_pending(
        PendingOidc(
            state="old",
            nonce="n",
            code_verifier="v",
            return_to=None,
            created_at=now - timedelta(hours=1),
        )
    )
    assert forget_ended_sign_ins(people, settings, now) == (0, 1, 1)
    assert people.session(session.id) is not None
    assert forget_ended_sign_ins(people, settings, now + timedelta(hours=2)) == (1, 0, 1)
    assert people.session(session.id) is None
