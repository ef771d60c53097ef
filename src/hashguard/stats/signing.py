"""The host's Ed25519 signing key for what it publishes (the aggregate feed), and the
detached signature a collector verifies.

The key is derived from the master key (``MasterKey.derive``), so it needs no storage of
its own and survives restarts; rotating the master key rotates it. Its id is
``ed25519:`` + the first 16 hex digits of SHA-256 over the raw public key. A collector
pins the public key it was given out of band (``hashguard stats feed-key``); the copy in
the envelope only helps it pick the right pinned key.

What is signed: the canonical JSON of the feed (sorted keys, no whitespace, UTF-8, no
floats anywhere in the feed, so it is also RFC 8785 canonical form).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hashguard.keys import MasterKey

PURPOSE = "hashguard stats feed signing key v1"
ALGORITHM = "Ed25519"


class BadSignature(Exception):
    """The envelope is malformed, names another key, or its signature does not verify."""


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_id(public: bytes) -> str:
    return "ed25519:" + hashlib.sha256(public).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SigningKey:
    private: Ed25519PrivateKey

    @classmethod
    def from_master(cls, master: MasterKey) -> SigningKey:
        return cls(Ed25519PrivateKey.from_private_bytes(master.derive(PURPOSE)))

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def id(self) -> str:
        return key_id(self.public)

    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The envelope: ``payload`` and a detached signature over its canonical JSON."""
        return {
            "payload": dict(payload),
            "signature": {
                "algorithm": ALGORITHM,
                "key_id": self.id,
                "public_key": base64.b64encode(self.public).decode(),
                "value": base64.b64encode(self.private.sign(canonical(payload))).decode(),
            },
        }


def verify(envelope: Mapping[str, Any], public_key: bytes) -> dict[str, Any]:
    """The payload of ``envelope`` if it is signed by ``public_key`` (raw 32 bytes, the
    key the collector pinned); else ``BadSignature``."""
    try:
        payload = envelope["payload"]
        signature = envelope["signature"]
        if signature["algorithm"] != ALGORITHM:
            raise BadSignature(f"unknown algorithm {signature['algorithm']!r}")
        if signature["key_id"] != key_id(public_key):
            raise BadSignature(f"signed by {signature['key_id']}, not by {key_id(public_key)}")
        value = base64.b64decode(signature["value"], validate=True)
        Ed25519PublicKey.from_public_bytes(public_key).verify(value, canonical(payload))
    except InvalidSignature:
        raise BadSignature("the signature does not match the payload") from None
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise BadSignature(f"not a signed envelope: {exc}") from None
    if not isinstance(payload, dict):
        raise BadSignature("the payload is not an object")
    return payload
