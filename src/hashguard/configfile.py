"""The TOML settings file that commands write to (``remote add``, ``init --via``): where
it is, and adding one table to it without touching what is already there."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hashguard.settings import CONFIG_ENV, Settings


class ConfigFileError(Exception):
    """The settings file cannot take the change (named, with the file)."""


def config_path(settings: Settings) -> Path:
    """The file the settings are read from: ``HASHGUARD_CONFIG``, else
    ``$HASHGUARD_HOME/hashguard.toml``."""
    named = os.environ.get(CONFIG_ENV)
    return Path(named).expanduser() if named else settings.home / "hashguard.toml"


def add_table(path: Path, table: tuple[str, ...], values: Mapping[str, Any]) -> None:
    """Append ``[a.b]`` with ``values`` (strings, numbers, booleans, lists of them) to
    ``path`` (created, mode 0600, when missing). Refused when the table is there already
    or the file would no longer parse; the file is replaced whole or not at all."""
    before = absent(path, table)
    lines = [f"[{'.'.join(_key(k) for k in table)}]"]
    lines += [f"{_key(key)} = {_value(value)}" for key, value in values.items()]
    text = before + ("\n" if before and not before.endswith("\n") else "")
    text += ("\n" if before.strip() else "") + "\n".join(lines) + "\n"
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{path} cannot take [{'.'.join(table)}] ({exc})") from None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(partial, path)


def absent(path: Path, table: tuple[str, ...]) -> str:
    """``path``'s text (empty when missing) if it parses and has no ``table``; else
    ``ConfigFileError``."""
    before = path.read_text() if path.exists() else ""
    try:
        current = tomllib.loads(before)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{path} is not valid TOML ({exc})") from None
    found: Any = current
    for key in table:
        if not isinstance(found, dict) or key not in found:
            return before
        found = found[key]
    raise ConfigFileError(f"{path} already has [{'.'.join(table)}]: edit or remove it")


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _value(value: Any) -> str:
    """A TOML value: JSON's strings, numbers and arrays are TOML's (JSON never writes the
    ``\\/`` escape TOML lacks)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return json.dumps(value)
    if isinstance(value, list | tuple) and all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in value
    ):
        return json.dumps(list(value))
    raise ConfigFileError(f"cannot write {type(value).__name__} values to the settings file")
