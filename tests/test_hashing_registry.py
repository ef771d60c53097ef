"""The kernel runs the hashers the registry enables: the built-ins, or a plugin's, in the
isolated workers too; and the exact hashes cannot be switched off."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.scans import Outcome
from hashguard.domain.signals import Algorithm, FileSignals, PdqMode
from hashguard.hashing.decode import DecodeError, pdq_input
from hashguard.hashing.hasher import (
    BUILTIN_HASHERS,
    Hasher,
    Md5Hasher,
    MediaHasher,
    PdqHasher,
    enabled_hashers,
)
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions, hash_data, hash_path
from hashguard.hashing.pdq import pdq_hash
from hashguard.plugins import GROUP, PluginError, Registry
from hashguard.testing import HasherContract
from tests.cli import hashguard

if TYPE_CHECKING:
    from hashguard.hashing.kernel import HashOptions as Options


class NetpbmPdq(MediaHasher):
    """A plugin's media hasher for a format the built-in PDQ hasher does not decode:
    reference PDQ of binary Netpbm (PPM/PGM) images, through the same PDQ code."""

    name = "pdq_netpbm"
    algorithm = Algorithm.PDQ
    media = "netpbm"
    description = "PDQ of binary PPM/PGM images (test plugin)"

    def applies(self, head: bytes) -> bool:
        return head[:2] in (b"P5", b"P6")

    def add(self, data: bytes, signals: FileSignals, options: Options) -> FileSignals:
        with Image.open(io.BytesIO(data), formats=("PPM",)) as image:
            if image.width * image.height > options.max_pixels:
                raise DecodeError("over the pixel cap")
            pixels = pdq_input(image)
            width, height = image.size
        return dataclasses.replace(
            signals,
            pdq=(pdq_hash(pixels, mode=PdqMode.REFERENCE),),
            image_format="netpbm",
            width=width,
            height=height,
        )

    def values(self, signals: FileSignals) -> tuple[str, ...]:
        return tuple(p.value for p in signals.pdq)


class NotASort(Hasher):
    name = "not_a_sort"
    algorithm = Algorithm.MD5
    description = "a hasher of neither sort"

    def values(self, signals: FileSignals) -> tuple[str, ...]:
        return ()


def _netpbm(seed: int = 5) -> bytes:
    buffer = io.BytesIO()
    generate(Kind.PHOTO, seed=seed, width=320, height=240).convert("RGB").save(buffer, "PPM")
    return buffer.getvalue()


class TestNetpbmPlugin(HasherContract):
    def hasher(self) -> Hasher:
        return NetpbmPdq.configure({}, {})

    def sample(self) -> bytes:
        return _netpbm()


def _registry(plugin: type[Hasher], enabled: list[str]) -> Registry:
    """The installed entry points and ``plugin``'s, as if its package were installed."""
    point = EntryPoint(name=plugin.name, value=f"{__name__}:{plugin.__qualname__}", group=GROUP)
    return Registry.load(enabled, points=[*entry_points(group=GROUP), point])


def test_the_built_in_hashers_are_what_the_registry_enables_by_default() -> None:
    assert enabled_hashers(Registry.load()) == BUILTIN_HASHERS
    assert HashOptions(max_pixels=1).hashers == BUILTIN_HASHERS


def test_the_exact_hashes_cannot_be_switched_off() -> None:
    """Leaving md5 out of ``adapters`` would make every MD5 list entry silently never
    match: refused when the hashers are built, naming what is missing."""
    with pytest.raises(PluginError, match="missing: md5"):
        enabled_hashers(Registry.load(["sha1", "sha256", "pdq", "local_file"]))
    with pytest.raises(PluginError, match="missing: sha1"):
        HashOptions(max_pixels=1, hashers=(Md5Hasher.configure({}, {}), *BUILTIN_HASHERS[2:]))
    twice = (*BUILTIN_HASHERS, Md5Hasher.configure({}, {}))
    with pytest.raises(PluginError, match="each be enabled once"):
        HashOptions(max_pixels=1, hashers=twice)
    with pytest.raises(PluginError, match="neither ExactHasher nor MediaHasher"):
        enabled_hashers(_registry(NotASort, ["md5", "sha1", "sha256", "not_a_sort"]))


def test_without_pdq_images_are_exact_hashed_and_unsupported() -> None:
    """Switching PDQ off (an exact-only deployment) never turns an image into a
    ``no_match``: it is ``unsupported``, with its exact hashes."""
    hashers = enabled_hashers(Registry.load(["md5", "sha1", "sha256"]))
    assert not any(isinstance(h, PdqHasher) for h in hashers)
    jpeg = encode(generate(Kind.PHOTO, seed=2, width=300, height=200), "JPEG")
    output = hash_data(jpeg, HashOptions(max_pixels=10**7, hashers=hashers))
    assert output.signals is not None
    assert output.signals.pdq == ()
    both = hash_data(jpeg, HashOptions(max_pixels=10**7)).signals
    assert both is not None
    assert output.signals.md5 == both.md5
    assert output.problem is Outcome.UNSUPPORTED
    assert output.reason == "no enabled hasher decodes files (exact hashes only)"


def test_a_plugin_hasher_runs_in_the_isolated_workers_without_an_edit_of_the_kernel(
    tmp_path: Path,
) -> None:
    names = ["md5", "sha1", "sha256", "pdq", "pdq_netpbm"]
    registry = _registry(NetpbmPdq, names)
    hashers = enabled_hashers(registry)
    assert [h.name for h in hashers] == ["md5", "sha1", "sha256", "pdq", "pdq_netpbm"]
    options = HashOptions(max_pixels=10**7, pdq_mode=PdqMode.REFERENCE, hashers=hashers)
    netpbm = tmp_path / "a.ppm"
    netpbm.write_bytes(_netpbm())
    png = tmp_path / "b.png"
    png.write_bytes(encode(generate(Kind.PHOTO, seed=5, width=320, height=240), "PNG"))
    text = tmp_path / "c.txt"
    text.write_bytes(b"P7 is not a netpbm picture this plugin decodes")
    with HashingPool(workers=1, options=options, timeout=60, memory_mb=1024) as pool:
        by_worker = {path.name: pool.hash(str(path)) for path in (netpbm, png, text)}
        upload = pool.submit_data(netpbm.read_bytes()).result()
    for name, output in by_worker.items():
        assert output == hash_path(str(tmp_path / name), options), name
    assert upload == by_worker["a.ppm"]
    ppm, picture, other = by_worker["a.ppm"], by_worker["b.png"], by_worker["c.txt"]
    assert ppm.problem is None
    assert ppm.signals is not None
    assert ppm.signals.image_format == "netpbm"
    assert picture.signals is not None
    # The same picture, in two containers, decoded by two hashers: one PDQ hash.
    assert [p.value for p in ppm.signals.pdq] == [p.value for p in picture.signals.pdq]
    assert (other.problem, other.reason) == (
        Outcome.UNSUPPORTED,
        "not an image or netpbm format on the allowlist",
    )
    # Without the plugin, the same file is exact-hashed only.
    without = hash_path(str(netpbm), HashOptions(max_pixels=10**7))
    assert (without.problem, without.reason) == (
        Outcome.UNSUPPORTED,
        "not an image or video format on the allowlist",
    )


def test_a_failing_media_hasher_costs_its_file_only_with_its_reason() -> None:
    class Broken(NetpbmPdq):
        def add(self, data: bytes, signals: FileSignals, options: Options) -> FileSignals:
            raise RuntimeError("odd pixels")

    hashers = (*BUILTIN_HASHERS, Broken.configure({}, {}))
    output = hash_data(_netpbm(), HashOptions(max_pixels=10**7, hashers=hashers))
    assert output.signals is not None
    assert output.signals.sha256
    assert (output.problem, output.reason) == (Outcome.UNDECODABLE, "PDQ failed: odd pixels")


def test_hashguard_plugins_lists_the_hashers() -> None:
    rows = json.loads(hashguard("plugins", "list", "--json").stdout)
    hashers = {r["name"]: r for r in rows if r["kind"] == "hasher"}
    assert set(hashers) >= {"md5", "sha1", "sha256", "pdq"}
    assert all(r["enabled"] and r["distribution"] == "hashguard" for r in hashers.values())


def test_every_task_carries_its_hashers_compactly() -> None:
    """Each task sent to a worker pickles its ``HashOptions``: a built-in hasher travels
    as its name (a pickled pydantic model made every task four times larger, and a
    SIGTERM'd scan then hung now and then in pebble's stop), a plugin's as its class and
    plain settings."""
    options = HashOptions(max_pixels=10**7)
    sent = pickle.dumps(options)
    assert len(sent) < 300
    received = pickle.loads(sent)
    assert received == options
    assert all(a is b for a, b in zip(received.hashers, BUILTIN_HASHERS, strict=True))
    plugin = NetpbmPdq.configure({}, {})
    assert pickle.loads(pickle.dumps(plugin)) == plugin
