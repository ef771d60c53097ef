"""Local sign-in: name and password, with a rate limit, and the session it starts.

Rate limit: each failure is recorded under the account (``user:<name>``) and the
address (``ip:<addr>``). When either has ``login_max_failures`` failures within the
last ``login_lockout_minutes``, further tries are refused (``LockedOut``) without
looking at the password and without being counted, so the lock lifts once the window
has passed the failures. A successful sign-in forgets the account's failures (not the
address's: one's own account must not reset the count for guesses at others).

Nothing tells an unknown name from a wrong password: an unknown name (or a disabled
account, or one without a password) is verified against a dummy hash, taking the same
time, and answered with the same ``WrongCredentials``.

Audit: ``login.failed`` (actor ``anon:<addr>``, subject ``user:<name>`` for a known
name and ``user:?`` for an unknown one, so that a password typed into the name field
never reaches the append-only log; the reason for auditors, never the password),
``login.locked`` once, when a failure engages the lock, and ``login`` when a session
starts (``start_session``, for every method).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hashguard.audit import record
from hashguard.domain.audit import AuditAction
from hashguard.domain.people import UiSession, User
from hashguard.people import passwords
from hashguard.settings import Settings
from hashguard.store import Store

#: the longest name counted (the store keys failures by ``user:<name>``, 200 chars)
MAX_NAME = 100


class SignInError(Exception):
    """Sign-in refused."""


class WrongCredentials(SignInError):
    """The name or the password was wrong (deliberately not saying which)."""

    def __init__(self) -> None:
        super().__init__("wrong name or password")


class LockedOut(SignInError):
    """Too many failures for this account or address: wait ``retry_after_seconds``."""

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"too many failed sign-ins: try again in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True, kw_only=True, slots=True)
class _Keys:
    account: str
    address: str | None

    def all(self) -> list[str]:
        return [self.account] + ([self.address] if self.address else [])


#: the audit subject of a failed sign-in under a name nobody has
UNKNOWN_SUBJECT = "user:?"


def anon_actor(ip: str | None) -> str:
    """The audit actor of someone not signed in."""
    return f"anon:{ip or 'unknown'}"


def _keys(name: str, ip: str | None) -> _Keys:
    return _Keys(account=f"user:{name[:MAX_NAME]}", address=f"ip:{ip[:150]}" if ip else None)


def _locked(store: Store, keys: _Keys, since: datetime, limit: int) -> bool:
    return any(store.people.login_failures_since(k, since) >= limit for k in keys.all())


def sign_in(
    store: Store,
    settings: Settings,
    name: str,
    password: str,
    ip: str | None,
    *,
    now: datetime | None = None,
) -> User:
    """The person ``name`` if ``password`` is theirs; raises ``WrongCredentials`` or
    ``LockedOut``. Blocking (Argon2 and the store): call it from a worker thread."""
    at = now or datetime.now(UTC)
    window = timedelta(minutes=settings.login_lockout_minutes)
    limit = settings.login_max_failures
    keys = _keys(name, ip)
    if _locked(store, keys, at - window, limit):
        raise LockedOut(int(window.total_seconds()))

    user = store.people.find_user(name) if len(name) <= MAX_NAME else None
    stored = store.people.password_hash(user.id) if user is not None else None
    if stored is None:
        passwords.verify_password(passwords.dummy_hash(), password)
        reason = "unknown_name" if user is None else "no_password"
        ok = False
    else:
        ok = passwords.verify_password(stored, password)
        reason = "wrong_password"
    if ok and user is not None and user.disabled:
        ok, reason = False, "disabled"
    if not ok or user is None:
        subject = keys.account if user is not None else UNKNOWN_SUBJECT
        _failed(store, settings, keys, ip, reason, subject, at, window)
        raise WrongCredentials
    assert stored is not None
    if passwords.needs_rehash(stored):
        store.people.update_user(user.id, password_hash=passwords.hash_password(password))
    store.people.clear_login_failures(keys.account)
    return user


def _failed(
    store: Store,
    settings: Settings,
    keys: _Keys,
    ip: str | None,
    reason: str,
    subject: str,
    at: datetime,
    window: timedelta,
) -> None:
    store.people.record_login_failure(keys.all(), at)
    actor = anon_actor(ip)
    record(
        store,
        actor,
        AuditAction.LOGIN_FAILED,
        subject,
        method="password",
        ip=ip,
        reason=reason,
    )
    since = at - window
    for key in keys.all():
        if store.people.login_failures_since(key, since) == settings.login_max_failures:
            record(
                store,
                actor,
                AuditAction.LOGIN_LOCKED,
                subject,
                key=subject if key == keys.account else key,
                failures=settings.login_max_failures,
                minutes=settings.login_lockout_minutes,
                ip=ip,
            )


def start_session(
    store: Store, user: User, *, method: str, ip: str | None
) -> tuple[UiSession, str]:
    """A new session for ``user`` (signed in by ``method``), audited as ``login``;
    returns it and the cookie secret."""
    session, secret = store.people.create_session(user.id, method=method, ip=ip)
    record(store, user.actor, AuditAction.LOGIN, user.actor, method=method, ip=ip)
    return session, secret
