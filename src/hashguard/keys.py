"""The master key, and sealing small secrets with it (AES-256-GCM).

Exchange credentials (and, later, evidence data keys) are stored sealed: a random
96-bit nonce, the ciphertext and its tag, bound by associated data to what they
belong to, so a sealed value copied onto another record fails to open. The key comes
from ``HASHGUARD_MASTER_KEY`` (base64 of 32 bytes) or the file named by
``HASHGUARD_MASTER_KEY_FILE``; without either, one is created in the home folder on
first use (mode 0600) and the operator is told to keep a copy apart from the database.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hashguard.permissions import private_dir

if TYPE_CHECKING:
    from hashguard.settings import Settings

VERSION = b"\x01"
NONCE_BYTES = 12


class MasterKeyError(Exception):
    """The master key is missing, malformed, or does not open a sealed value."""


def generate() -> str:
    """A new master key, base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _decode(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"the master key in {where} is not base64") from None
    if len(key) != 32:
        raise MasterKeyError(
            f"the master key in {where} must be 32 bytes (256 bits), not {len(key)}"
        )
    return key


class MasterKey:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._key = key

    def derive(self, purpose: str, length: int = 32) -> bytes:
        """Key material for ``purpose`` (HKDF-SHA256 of the master key): the same key on
        every start, and nothing about the master key or another purpose's key follows
        from it (e.g. the seed of the host's Ed25519 feed-signing key)."""
        return HKDF(
            algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode()
        ).derive(self._key)

    @classmethod
    def load(
        cls, *, value: str | None, file: Path | None, default_file: Path
    ) -> tuple[MasterKey, bool]:
        """The configured key; with none configured, the one in ``default_file`` (created
        if missing). Returns the key and whether it was just created."""
        if value:
            return cls(_decode(value, "HASHGUARD_MASTER_KEY")), False
        path = file or default_file
        created = False
        if file is None and not path.exists():
            private_dir(path.parent)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(generate() + "\n")
            created = True
        try:
            text = path.read_text()
        except OSError as exc:
            raise MasterKeyError(
                f"cannot read the master key file {path}: {exc.strerror}"
            ) from None
        return cls(_decode(text, str(path))), created

    def seal(self, plaintext: bytes, *, context: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return VERSION + nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, *, context: str) -> bytes:
        if sealed[:1] != VERSION or len(sealed) < 1 + NONCE_BYTES + 16:
            raise MasterKeyError("not a sealed value of this version")
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, context.encode())
        except InvalidTag:
            raise MasterKeyError(
                f"the sealed value of {context} does not open with this master key "
                "(wrong key, or the value belongs to another record)"
            ) from None


def master_key_for(settings: Settings) -> tuple[MasterKey, bool]:
    """The installation's master key as the settings name it (see ``MasterKey.load``)."""
    return MasterKey.load(
        value=settings.master_key.get_secret_value() if settings.master_key else None,
        file=settings.master_key_file,
        default_file=settings.default_master_key_file,
    )
