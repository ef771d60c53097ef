"""The adapter registry: every hasher, list source and remote matcher, built-in or not,
is found through the ``hashguard.plugins`` entry-point group.

Adapter names are persisted identifiers (``md5``, ``ncmec``, ``photodna``): lowercase,
unique, never renamed. Installing a package never switches its adapters on; the
``adapters`` setting names the ones that may be used (by default the built-ins).
"""

from __future__ import annotations

import re
from abc import ABC
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import EntryPoint, entry_points
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

GROUP = "hashguard.plugins"
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


class AdapterKind(StrEnum):
    HASHER = "hasher"
    LIST_SOURCE = "list_source"
    REMOTE_MATCHER = "remote_matcher"
    REPORT_SINK = "report_sink"
    #: where statements of reasons are filed (the DSA Transparency Database)
    STATEMENT_SINK = "statement_sink"
    #: a classifier's score: review priority only, never a match (``hashguard.classify``)
    CLASSIFIER = "classifier"


class NoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Adapter(ABC):
    """What every adapter declares. Subclass one of the kinds, not this."""

    kind: ClassVar[AdapterKind]
    #: persisted identifier: lowercase letters, digits and '_'; never renamed
    name: ClassVar[str]
    description: ClassVar[str]
    #: its non-secret settings, validated (extra keys refused)
    Settings: ClassVar[type[BaseModel]] = NoSettings
    #: names of the credentials it needs (held encrypted, never logged)
    secrets: ClassVar[tuple[str, ...]] = ()
    #: credentials it can use when given (e.g. a key for sending feedback)
    optional_secrets: ClassVar[tuple[str, ...]] = ()
    #: who may use it and under which terms (shown by ``hashguard plugins list``)
    terms: ClassVar[str] = ""

    def __init__(self, settings: BaseModel, secrets: Mapping[str, SecretStr]) -> None:
        self.settings = settings
        self.credentials = dict(secrets)

    @classmethod
    def configure(cls, settings: Mapping[str, Any], secrets: Mapping[str, SecretStr]) -> Any:
        """An instance from raw settings; ``PluginError`` names what is wrong (never a
        secret's value)."""
        try:
            parsed = cls.Settings.model_validate(dict(settings))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
                for e in exc.errors()
            )
            raise PluginError(f"{cls.name}: invalid settings: {problems}") from None
        missing = [name for name in cls.secrets if name not in secrets]
        if missing:
            raise PluginError(f"{cls.name}: missing credentials: {', '.join(missing)}")
        return cls(parsed, secrets)


class PluginError(Exception):
    """A plugin that cannot be loaded or used, with a message naming it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Installed:
    name: str
    kind: AdapterKind
    description: str
    distribution: str
    enabled: bool
    adapter: type[Adapter]


class Registry:
    """The adapters of the installed entry points, checked once at load."""

    def __init__(self, adapters: Mapping[str, Installed]) -> None:
        self._adapters = dict(adapters)

    @classmethod
    def load(
        cls,
        enabled: Iterable[str] | None = None,
        *,
        points: Iterable[EntryPoint] | None = None,
    ) -> Registry:
        """Load every entry point of the group (or ``points``). ``enabled`` names the
        adapters that may be used; ``None`` enables the built-ins only.

        Duplicate names, wrong types and bad names are refused with ``PluginError``.
        """
        found: dict[str, Installed] = {}
        wanted = None if enabled is None else set(enabled)
        for point in entry_points(group=GROUP) if points is None else points:
            adapter = _load(point)
            if adapter.name in found:
                raise PluginError(
                    f"two plugins are named {adapter.name!r}: "
                    f"{found[adapter.name].adapter.__module__} and {adapter.__module__}"
                )
            distribution = point.dist.name if point.dist is not None else "hashguard"
            builtin = adapter.__module__.startswith("hashguard.")
            found[adapter.name] = Installed(
                name=adapter.name,
                kind=adapter.kind,
                description=adapter.description,
                distribution=distribution,
                enabled=builtin if wanted is None else adapter.name in wanted,
                adapter=adapter,
            )
        if wanted is not None and (unknown := wanted - set(found)):
            raise PluginError(f"enabled adapters that are not installed: {sorted(unknown)}")
        return cls(found)

    def installed(self) -> list[Installed]:
        return sorted(self._adapters.values(), key=lambda a: (a.kind, a.name))

    def enabled(self, kind: AdapterKind) -> list[type[Adapter]]:
        """The enabled adapters of ``kind``, by name."""
        return [a.adapter for a in self.installed() if a.kind is kind and a.enabled]

    def get(self, name: str, kind: AdapterKind) -> type[Adapter]:
        """The enabled adapter ``name`` of ``kind``, or ``PluginError`` saying why not."""
        found = self._adapters.get(name)
        if found is None or found.kind is not kind:
            known = sorted(a.name for a in self._adapters.values() if a.kind is kind)
            raise PluginError(f"no {kind} adapter named {name!r} (installed: {known})")
        if not found.enabled:
            raise PluginError(f"adapter {name!r} is installed but not enabled (setting adapters)")
        return found.adapter


def _load(point: EntryPoint) -> type[Adapter]:
    try:
        loaded = point.load()
    except Exception as exc:  # a broken plugin must say so, not crash the caller
        raise PluginError(f"plugin {point.name!r} ({point.value}) failed to load: {exc}") from exc
    if not (isinstance(loaded, type) and issubclass(loaded, Adapter)):
        raise PluginError(f"plugin {point.name!r} ({point.value}) is not a hashguard adapter class")
    if getattr(loaded, "kind", None) not in set(AdapterKind):
        raise PluginError(f"plugin {point.name!r} does not subclass an adapter kind")
    name = getattr(loaded, "name", None)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise PluginError(
            f"plugin {point.value} has an invalid name {name!r} "
            "(lowercase letters, digits and '_', starting with a letter)"
        )
    if name != point.name:
        raise PluginError(f"entry point {point.name!r} loads an adapter named {name!r}")
    return loaded
