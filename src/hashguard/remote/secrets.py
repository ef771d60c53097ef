"""Credentials of remote matchers: sealed in the store, opened only to build a matcher.

``hashguard remote set-secret NAME KEY`` seals a value with the master key (AES-256-GCM,
bound to ``remote:<name>:<key>``, so a sealed value copied onto another adapter or key
does not open) and stores it. Secrets in the settings (``remote_secrets`` in the TOML
file or ``HASHGUARD_REMOTE_SECRETS``) are plaintext on disk or in the environment: they
still work, with a deprecation warning, and a sealed value of the same key wins.
No value is ever logged, printed or put in an error; only adapter names and keys are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from pydantic import SecretStr

from hashguard.keys import MasterKey, MasterKeyError
from hashguard.plugins import PluginError

log = logging.getLogger(__name__)


class SealedSecrets(Protocol):
    """Where sealed secrets are read from (``store.remote_secrets``)."""

    def sealed(self, name: str) -> Mapping[str, bytes]: ...


def secret_context(name: str, key: str) -> str:
    return f"remote:{name}:{key}"


def seal_secret(master_key: MasterKey, name: str, key: str, value: str) -> bytes:
    return master_key.seal(value.encode(), context=secret_context(name, key))


def open_secrets(
    master_key: MasterKey, name: str, sealed: Mapping[str, bytes]
) -> dict[str, SecretStr]:
    """``name``'s sealed values, opened; ``MasterKeyError`` when one does not open."""
    return {
        key: SecretStr(master_key.open(value, context=secret_context(name, key)).decode())
        for key, value in sealed.items()
    }


def matcher_secrets(
    names: Iterable[str],
    *,
    plaintext: Mapping[str, Mapping[str, SecretStr]],
    stored: SealedSecrets | None,
    master_key: Callable[[], MasterKey] | None,
) -> dict[str, dict[str, SecretStr]]:
    """The credentials of each remote matcher in ``names``: its sealed secrets from
    ``stored`` (opened with ``master_key()``, asked for only when one is stored), then
    any plaintext ones from the settings that no sealed one replaces (each logged as
    deprecated, by adapter and key). ``PluginError`` when sealed secrets cannot be
    opened (no key, wrong key, or a value bound to another adapter or key)."""
    found: dict[str, dict[str, SecretStr]] = {}
    key: MasterKey | None = None
    for name in names:
        sealed = stored.sealed(name) if stored is not None else {}
        secrets: dict[str, SecretStr] = {}
        if sealed:
            if master_key is None:
                raise PluginError(f"{name}: its secrets are sealed and no master key is given")
            try:
                key = key or master_key()
                secrets = open_secrets(key, name, sealed)
            except MasterKeyError as exc:
                raise PluginError(f"{name}: its sealed secrets do not open ({exc})") from None
        for secret, value in plaintext.get(name, {}).items():
            if secret in secrets:
                log.warning(
                    "remote matcher %s: secret %r is sealed in the store; its plaintext "
                    "copy in the settings (remote_secrets) is ignored: remove it",
                    name,
                    secret,
                )
                continue
            log.warning(
                "remote matcher %s: secret %r comes in plaintext from the settings "
                "(remote_secrets), which is deprecated: seal it with "
                "`hashguard remote set-secret %s %s` and remove it from the settings",
                name,
                secret,
                name,
                secret,
            )
            secrets[secret] = value
        found[name] = secrets
    return found
