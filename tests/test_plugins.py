"""The adapter registry, the built-in hashers' contract, and the master key."""

from __future__ import annotations

import io
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from hashguard.banks.exchanges.localfile import LocalFileExchange
from hashguard.hashing.hasher import Hasher, Md5Hasher, PdqHasher, Sha1Hasher, Sha256Hasher
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.keys import MasterKey, MasterKeyError, generate
from hashguard.plugins import GROUP, AdapterKind, PluginError, Registry
from hashguard.testing import HasherContract


def _photo() -> bytes:
    rng = np.random.default_rng(7)
    pixels = (np.add.outer(np.arange(256), np.arange(256)) // 2).astype(np.uint8)
    noisy = np.clip(pixels[..., None] + rng.integers(0, 40, (256, 256, 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(noisy.astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


class TestMd5(HasherContract):
    def hasher(self) -> Hasher:
        return Md5Hasher.configure({}, {})

    def sample(self) -> bytes:
        return b"benign bytes"


class TestSha1(TestMd5):
    def hasher(self) -> Hasher:
        return Sha1Hasher.configure({}, {})


class TestSha256(TestMd5):
    def hasher(self) -> Hasher:
        return Sha256Hasher.configure({}, {})


class TestPdq(HasherContract):
    def hasher(self) -> Hasher:
        return PdqHasher.configure({}, {})

    def sample(self) -> bytes:
        return _photo()


def test_pdq_hasher_applies_to_images_only() -> None:
    pdq = PdqHasher.configure({}, {})
    assert not pdq.applies(b"not an image")
    output = hash_data(b"not an image", HashOptions(max_pixels=50_000_000))
    assert output.signals is not None
    assert pdq.values(output.signals) == ()


# -- the registry -------------------------------------------------------------------------


class BadName(Md5Hasher):
    name = "Bad-Name"


class Renamed(Md5Hasher):
    name = "md5_copy"


class NeedsSecrets(LocalFileExchange):
    name = "needs_secrets"
    secrets: ClassVar[tuple[str, ...]] = ("password",)


def _point(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=GROUP)


def test_the_installed_built_ins_load_and_are_enabled() -> None:
    registry = Registry.load()
    names = {a.name: a for a in registry.installed()}
    assert {"md5", "sha1", "sha256", "pdq", "local_file"} <= set(names)
    assert all(a.enabled for a in names.values() if a.distribution == "hashguard")
    assert registry.get("local_file", AdapterKind.LIST_SOURCE) is LocalFileExchange


def test_plugins_are_refused_at_load_with_a_clear_error() -> None:
    md5 = _point("md5", "hashguard.hashing.hasher:Md5Hasher")
    cases = {
        "two plugins are named 'md5'": [md5, md5],
        "failed to load": [_point("gone", "hashguard.nowhere:Gone")],
        "not a hashguard adapter class": [_point("path", "pathlib:Path")],
        "invalid name": [_point("Bad-Name", f"{__name__}:BadName")],
        "loads an adapter named 'md5_copy'": [_point("other", f"{__name__}:Renamed")],
    }
    for message, points in cases.items():
        with pytest.raises(PluginError, match=message):
            Registry.load(points=points)


def test_installing_never_enables_a_plugin() -> None:
    points = [
        _point("md5", "hashguard.hashing.hasher:Md5Hasher"),
        _point("md5_copy", f"{__name__}:Renamed"),  # not a hashguard module: a plugin
    ]
    registry = Registry.load(points=points)
    with pytest.raises(PluginError, match="installed but not enabled"):
        registry.get("md5_copy", AdapterKind.HASHER)
    assert Registry.load(["md5_copy"], points=points).get("md5_copy", AdapterKind.HASHER)
    with pytest.raises(PluginError, match="not installed"):
        Registry.load(["photodna_v9"], points=points)
    with pytest.raises(PluginError, match="no list_source adapter named 'md5'"):
        registry.get("md5", AdapterKind.LIST_SOURCE)


def test_settings_and_credentials_are_checked_without_showing_secrets(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="batch_size"):
        LocalFileExchange.configure({"path": str(tmp_path), "batch_size": 0}, {})
    with pytest.raises(PluginError, match="colour: Extra inputs are not permitted"):
        LocalFileExchange.configure({"path": str(tmp_path), "colour": "red"}, {})
    with pytest.raises(PluginError, match="missing credentials: password"):
        NeedsSecrets.configure({"path": str(tmp_path)}, {})


# -- the master key -------------------------------------------------------------------------


def test_sealed_values_open_only_with_their_key_and_context(tmp_path: Path) -> None:
    key, created = MasterKey.load(value=None, file=None, default_file=tmp_path / "k")
    assert created
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    again, created = MasterKey.load(value=None, file=None, default_file=tmp_path / "k")
    assert not created
    sealed = key.seal(b"canary-secret", context="exchange a")
    assert b"canary-secret" not in sealed
    assert again.open(sealed, context="exchange a") == b"canary-secret"
    with pytest.raises(MasterKeyError, match="belongs to another record"):
        key.open(sealed, context="exchange b")
    other = MasterKey.load(value=generate(), file=None, default_file=tmp_path / "unused")[0]
    with pytest.raises(MasterKeyError, match="wrong key"):
        other.open(sealed, context="exchange a")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(MasterKeyError):
        key.open(tampered, context="exchange a")
    with pytest.raises(MasterKeyError, match="32 bytes"):
        MasterKey.load(value="c2hvcnQ=", file=None, default_file=tmp_path / "unused")
