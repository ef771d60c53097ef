"""Passwords: Argon2id hashes (argon2-cffi's defaults, RFC 9106's low-memory profile) and
the rules a new password must meet.

Hashes carry their parameters, so a hash made with older parameters still verifies;
``needs_rehash`` tells the sign-in to replace it with one made with today's.
"""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
#: longer input is refused before hashing: Argon2 reads all of it
MAX_LENGTH = 1024

_hasher = PasswordHasher()


class PasswordRefused(ValueError):
    """A new password that does not meet the rules (the message says which)."""


def check_new_password(name: str, password: str) -> None:
    """Refuse a password shorter than ``MIN_LENGTH``, longer than ``MAX_LENGTH`` or
    equal to the person's name (ignoring case and surrounding blanks)."""
    if len(password) < MIN_LENGTH:
        raise PasswordRefused(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordRefused(f"a password has at most {MAX_LENGTH} characters")
    if password.strip().casefold() == name.strip().casefold():
        raise PasswordRefused("a password must not be the name")


def hash_password(password: str) -> str:
    """The Argon2id hash of ``password`` (a PHC string with its own salt)."""
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored``; a malformed hash never matches."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with other parameters than today's."""
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password nobody knows: verified against when the name is
    unknown, so an unknown name takes as long to refuse as a wrong password."""
    return hash_password(secrets.token_urlsafe(32))
