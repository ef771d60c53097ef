"""Adding a remote matcher: its settings written to the settings file, its credentials
sealed in the store (``hashguard remote add``, ``hashguard init --via``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from hashguard.configfile import ConfigFileError, absent, add_table, config_path
from hashguard.keys import MasterKey
from hashguard.plugins import PluginError, Registry
from hashguard.remote.base import RemoteMatcher
from hashguard.remote.secrets import seal_secret
from hashguard.remote.service import ADAPTER_KEY, remote_kind
from hashguard.settings import Settings
from hashguard.store.remote_secrets import RemoteSecretStore

NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


class RemoteConfigError(Exception):
    """The remote matcher cannot be added as asked (the message says why, never a secret)."""


def add_remote(
    *,
    settings: Settings,
    registry: Registry,
    secrets_store: RemoteSecretStore,
    master_key: Callable[[], MasterKey],
    name: str,
    adapter: str,
    values: Mapping[str, Any],
    secrets: Mapping[str, str],
    actor: str,
    at: datetime,
) -> Path:
    """Check that ``adapter`` takes ``values`` and ``secrets`` (a matcher is built and
    closed: nothing is called), seal each secret under ``name`` (audited by name and key),
    then add ``[remote.<name>]`` to the settings file; returns the file."""
    if not NAME.fullmatch(name):
        raise RemoteConfigError(
            f"{name!r} is not a name: lowercase letters, digits and '_', starting with a letter"
        )
    if name in settings.remote:
        raise RemoteConfigError(f"a remote matcher named {name!r} is configured already")
    if ADAPTER_KEY in values:
        raise RemoteConfigError("give the adapter with --adapter, not as a setting")
    try:
        kind = remote_kind(registry, adapter)
        unknown = sorted(set(secrets) - {*kind.secrets, *kind.optional_secrets})
        if unknown:
            raise RemoteConfigError(f"{adapter} takes no credential named {', '.join(unknown)}")
        built = kind.configure(values, {k: SecretStr(v) for k, v in secrets.items()})
    except PluginError as exc:
        raise RemoteConfigError(str(exc)) from None
    assert isinstance(built, RemoteMatcher)
    built.close()
    path = config_path(settings)
    table = ({ADAPTER_KEY: adapter} if adapter != name else {}) | dict(values)
    try:
        absent(path, ("remote", name))  # before anything is sealed
    except ConfigFileError as exc:
        raise RemoteConfigError(str(exc)) from None
    key = master_key() if secrets else None
    for secret, value in secrets.items():
        assert key is not None
        secrets_store.put(name, secret, seal_secret(key, name, secret, value), actor=actor, at=at)
    try:
        add_table(path, ("remote", name), table)
    except ConfigFileError as exc:
        raise RemoteConfigError(str(exc)) from None
    return path
