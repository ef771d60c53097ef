"""Thorn Safer's asynchronous answers (bulk scans): the signed callback URL a submission
names, the check of a callback that arrives, and joining its answer to the scan items
it is for.

Hive's asynchronous endpoint (``POST /api/v2/task/async``) takes a callback URL and
POSTs the task's answer there when it is done (safer-hive.md). Hive's public
documentation, as far as hashguard's references go, describes no signature of its own
on that call, so hashguard signs the URL it hands out: the callback URL names the
configured service, the file's SHA-256 and an expiry, and carries
``sig = HMAC-SHA256(callback_secret, "<service>.<sha256>.<expires>")``. The server
accepts a callback only with the right signature (a forged or altered URL is refused,
403), before its expiry (a late one is refused, 410), and only while a scan item of
that content still awaits that service's answer from that task (a replay, or an answer
nobody awaits, is refused, 409). The ``callback_secret`` is a credential of the
adapter, sealed like its API key; nothing else in the URL is secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

#: the route Hive calls back (``service``: the configured name; ``sha256``: the file's)
CALLBACK_PATH = "/v1/callbacks/safer/{service}/{sha256}"
#: the reason of a scan item's Safer answer while its callback is awaited
PENDING = "awaiting Safer's callback"


class CallbackRefused(Exception):
    """A callback that is not taken: ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def takes_safer_callbacks(configs: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether a configured Safer matcher (``remote.<name>``) asks for callbacks: the
    server then mounts the callback route."""
    return any(
        str(options.get("adapter", name)) == "safer" and options.get("callback_base_url")
        for name, options in configs.items()
    )


def signature(secret: str, service: str, sha256: str, expires: int) -> str:
    message = f"{service}.{sha256}.{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def callback_url(base_url: str, secret: str, service: str, sha256: str, expires: int) -> str:
    """The URL Hive is given for one file's answer (``base_url``: our server as Hive
    reaches it)."""
    path = CALLBACK_PATH.format(service=service, sha256=sha256)
    query = urlencode({"expires": expires, "sig": signature(secret, service, sha256, expires)})
    return f"{base_url.rstrip('/')}{path}?{query}"


def check(secret: str, service: str, sha256: str, expires: int, sig: str, *, now: datetime) -> None:
    """Raise ``CallbackRefused`` unless ``sig`` signs these values and ``now`` is not
    past ``expires`` (seconds since the epoch). The signature is checked first: an
    altered expiry is a forgery, not a late answer."""
    if not hmac.compare_digest(sig, signature(secret, service, sha256, expires)):
        raise CallbackRefused(403, "the callback's signature does not match")
    if now > datetime.fromtimestamp(expires, UTC):
        raise CallbackRefused(410, "the callback came after its deadline")
