"""Passwords, local sign-in with its rate limit, and the ``hashguard users`` commands."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from hashguard.domain.people import Role
from hashguard.people import passwords, signin
from hashguard.people.passwords import PasswordRefused, check_new_password
from hashguard.people.signin import LockedOut, WrongCredentials, sign_in, start_session
from hashguard.settings import Settings
from hashguard.store import Store, open_store
from tests.cli import command

GOOD = "correct horse battery"


def _settings(**values: object) -> Settings:
    return Settings(**values)  # type: ignore[arg-type]


def events(store: Store, action: str) -> list[tuple[str, str | None, dict[str, object]]]:
    return [
        (e.actor, e.subject, dict(e.details)) for e in store.audit.events() if e.action == action
    ]


# -- passwords --------------------------------------------------------------------------


def test_password_hashing() -> None:
    stored = passwords.hash_password(GOOD)
    assert stored.startswith("$argon2id$")
    assert GOOD not in stored
    assert passwords.verify_password(stored, GOOD)
    assert not passwords.verify_password(stored, GOOD + "x")
    assert not passwords.verify_password("not a hash", GOOD)
    assert not passwords.needs_rehash(stored)
    weak = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(GOOD)
    assert passwords.verify_password(weak, GOOD)
    assert passwords.needs_rehash(weak)


def test_password_rules() -> None:
    check_new_password("alice", GOOD)
    with pytest.raises(PasswordRefused, match="12"):
        check_new_password("alice", "short")
    with pytest.raises(PasswordRefused, match="name"):
        check_new_password("alice.example1", "Alice.Example1")
    with pytest.raises(PasswordRefused):
        check_new_password("alice", "x" * 5000)


# -- sign-in ----------------------------------------------------------------------------


def test_sign_in_and_rehash(store: Store) -> None:
    settings = _settings()
    weak = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(GOOD)
    alice = store.people.create_user("alice", Role.REVIEWER, password_hash=weak)
    assert sign_in(store, settings, "alice", GOOD, "10.0.0.1") == alice
    stored = store.people.password_hash(alice.id)
    assert stored is not None
    assert stored != weak
    assert not passwords.needs_rehash(stored)  # rehashed with today's parameters
    assert sign_in(store, settings, "alice", GOOD, "10.0.0.1") == alice
    session, secret = start_session(store, alice, method="password", ip="10.0.0.1")
    assert store.people.session_by_secret(secret) == session
    assert events(store, "login") == [
        ("user:alice", "user:alice", {"method": "password", "ip": "10.0.0.1"})
    ]


def test_unknown_name_and_wrong_password_look_alike(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, settings = sqlite_store, _settings()
    store.people.create_user("bob", Role.VIEWER, password_hash=passwords.hash_password(GOOD))
    store.people.create_user("nopw", Role.VIEWER)
    off = store.people.create_user("off", Role.VIEWER, password_hash=passwords.hash_password(GOOD))
    store.people.update_user(off.id, disabled=True)
    verified: list[str] = []
    real = passwords.verify_password

    def counting(stored: str, password: str) -> bool:
        verified.append(stored)
        return real(stored, password)

    monkeypatch.setattr(passwords, "verify_password", counting)
    messages = []
    for name, password in [("bob", "wrong password!"), ("nobody", GOOD), ("nopw", GOOD)]:
        with pytest.raises(WrongCredentials) as refused:
            sign_in(store, settings, name, password, "10.0.0.2")
        messages.append(str(refused.value))
    with pytest.raises(WrongCredentials) as refused:  # a disabled account: the same answer
        sign_in(store, settings, "off", GOOD, "10.0.0.3")
    messages.append(str(refused.value))
    assert len(set(messages)) == 1
    assert len(verified) == 4  # every try costs one Argon2 verification
    failed = events(store, "login.failed")
    assert [(a, s, d["reason"]) for a, s, d in failed] == [
        ("anon:10.0.0.2", "user:bob", "wrong_password"),
        ("anon:10.0.0.2", "user:?", "unknown_name"),
        ("anon:10.0.0.2", "user:nopw", "no_password"),
        ("anon:10.0.0.3", "user:off", "disabled"),
    ]
    for event in store.audit.events():
        assert GOOD not in json.dumps(dict(event.details))
        assert "wrong password!" not in json.dumps(dict(event.details))


def test_rate_limit_per_account_and_per_address(store: Store) -> None:
    settings = _settings(login_max_failures=3, login_lockout_minutes=10)
    store.people.create_user("carol", Role.LEAD, password_hash=passwords.hash_password(GOOD))
    start = datetime.now(UTC)
    for i in range(3):
        with pytest.raises(WrongCredentials):
            sign_in(store, settings, "carol", "not her password", f"10.1.0.{i}", now=start)
    # the account is locked, from any address, even with the right password
    with pytest.raises(LockedOut) as locked:
        sign_in(store, settings, "carol", GOOD, "10.9.9.9", now=start + timedelta(minutes=1))
    assert 0 < locked.value.retry_after_seconds <= 600
    assert len(events(store, "login.locked")) == 1
    assert len(events(store, "login.failed")) == 3  # locked tries are not counted
    # the lock lifts once the window has passed the failures
    later = start + timedelta(minutes=10, seconds=1)
    assert sign_in(store, settings, "carol", GOOD, "10.9.9.9", now=later).name == "carol"
    assert store.people.login_failures_since("user:carol", start - timedelta(days=1)) == 0

    # one address guessing at many accounts is locked too
    for name in ("x1", "x2", "x3"):
        with pytest.raises(WrongCredentials):
            sign_in(store, settings, name, "guess guess guess", "10.2.0.1", now=later)
    with pytest.raises(LockedOut):
        sign_in(store, settings, "carol", GOOD, "10.2.0.1", now=later)
    assert sign_in(store, settings, "carol", GOOD, "10.2.0.2", now=later).name == "carol"
    (locked_event,) = [d for _, _, d in events(store, "login.locked") if d["key"] == "ip:10.2.0.1"]
    assert locked_event["failures"] == 3


def test_success_forgets_the_accounts_failures(sqlite_store: Store) -> None:
    store, settings = sqlite_store, _settings(login_max_failures=3)
    store.people.create_user("dan", Role.VIEWER, password_hash=passwords.hash_password(GOOD))
    for ip in ("10.3.0.1", "10.3.0.2"):
        with pytest.raises(WrongCredentials):
            sign_in(store, settings, "dan", "nope nope nope", ip)
    sign_in(store, settings, "dan", GOOD, "10.3.0.3")
    for ip in ("10.3.0.4", "10.3.0.5"):  # two more do not lock: the count started again
        with pytest.raises(WrongCredentials):
            sign_in(store, settings, "dan", "nope nope nope", ip)
    assert sign_in(store, settings, "dan", GOOD, "10.3.0.6").name == "dan"
    assert signin.anon_actor(None) == "anon:unknown"


# -- hashguard users ----------------------------------------------------------------------


def _run(*args: str, stdin: str = "", check: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command(*args), input=stdin, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == check, (done.returncode, done.stdout, done.stderr)
    return done


def _store(home: Path) -> Store:
    return open_store(f"sqlite:///{home / 'hashguard.db'}")


@pytest.mark.usefixtures("home")
def test_users_commands(home: Path) -> None:
    _run("users", "add", "alice", "--role", "reviewer", "--password-stdin", stdin=GOOD + "\n")
    _run(
        "users",
        "add",
        "sso.person",
        "--role",
        "lead",
        "--email",
        "sso@example.org",
        "--display-name",
        "S. Person",
        "--no-password",
    )
    refused = _run(
        "users", "add", "bob", "--role", "viewer", "--password-stdin", stdin="short\n", check=2
    )
    assert "12" in refused.stderr
    assert (
        "name"
        in _run("users", "add", "bad name", "--role", "viewer", "--no-password", check=2).stderr
    )
    assert (
        "exists"
        in _run("users", "add", "alice", "--role", "viewer", "--no-password", check=2).stderr
    )
    no_tty = _run("users", "add", "carl", "--role", "viewer", check=2)
    assert "--password-stdin" in no_tty.stderr

    listed = {u["name"]: u for u in json.loads(_run("users", "list", "--json").stdout)}
    assert set(listed) == {"alice", "sso.person"}
    assert (listed["alice"]["role"], listed["alice"]["has_password"]) == ("reviewer", True)
    assert listed["sso.person"]["has_password"] is False
    assert listed["sso.person"]["email"] == "sso@example.org"
    assert "argon2" not in _run("users", "list", "--json").stdout
    assert "alice" in _run("users", "list").stdout

    _run("users", "set-role", "alice", "lead")
    _run("users", "passwd", "alice", "--password-stdin", stdin="another long password\n")
    store = _store(home)
    try:
        alice = store.people.find_user("alice")
        assert alice is not None
        assert alice.role == Role.LEAD
        assert sign_in(store, Settings(), "alice", "another long password", None) == alice
        session, secret = store.people.create_session(alice.id, method="password", ip=None)
    finally:
        store.close()

    _run("users", "disable", "alice")
    store = _store(home)
    try:
        ended = store.people.session_by_secret(secret)
        assert ended is not None
        assert ended.revoked_at is not None  # disabling ended the session
        with pytest.raises(WrongCredentials):
            sign_in(store, Settings(), "alice", "another long password", None)
    finally:
        store.close()
    _run("users", "enable", "alice")
    assert "no person" in _run("users", "disable", "nobody", check=2).stderr

    store = _store(home)
    try:
        assert sign_in(store, Settings(), "alice", "another long password", None).name == "alice"
        created = events(store, "user.created")
        updated = events(store, "user.updated")
    finally:
        store.close()
    assert [s for _, s, _ in created] == ["user:alice", "user:sso.person"]
    assert all(a.startswith("cli:") for a, _, _ in created + updated)
    changes = [d for _, _, d in updated]
    assert changes == [
        {"role": "lead"},
        {"password_changed": True},
        {"disabled": True},
        {"disabled": False},
    ]
    assert session.user_id == alice.id
