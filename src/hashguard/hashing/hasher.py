"""The hasher adapter kind, and the vetted built-in hashers behind it.

The kernel (``hashguard.hashing.kernel``) runs the hashers it is given
(``HashOptions.hashers``: those the registry enables, ``enabled_hashers``; by default
the built-ins). There are two sorts, and a hasher is one of them:

- ``ExactHasher`` hashes the file's bytes. Every exact hasher is fed the same chunks in
  the kernel's one pass over the file, which is read once for all hashers.
- ``MediaHasher`` hashes decoded content (PDQ: images; vPDQ: video). ``applies`` says
  from the file's first bytes whether it decodes the file at all; only then is the
  file read whole into memory and ``add`` called, in an isolated worker process.

A new signal type is a new ``MediaHasher`` (and its ``Algorithm`` and ``FileSignals``
field in ``domain.signals``), registered under the ``hashguard.plugins`` entry points;
the kernel does not change. Hashers are sent to worker processes by pickle: a hasher
class must be importable by its module and name, and its settings picklable.
"""

from __future__ import annotations

import dataclasses
import hashlib
from abc import abstractmethod
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from hashguard.domain.signals import EXACT_ALGORITHMS, Algorithm, FileSignals
from hashguard.hashing import pdqfile, video
from hashguard.hashing.decode import sniff
from hashguard.plugins import Adapter, AdapterKind, NoSettings, PluginError, Registry

if TYPE_CHECKING:
    from hashguard.hashing.kernel import HashOptions


class Hasher(Adapter):
    """A vetted algorithm that turns a file into hash values. Subclass ``ExactHasher`` or
    ``MediaHasher``, not this.

    Hashers are values: two of the same class and settings are equal (``HashOptions``
    holding them compares and pickles as a value).
    """

    kind: ClassVar[AdapterKind] = AdapterKind.HASHER
    algorithm: ClassVar[Algorithm]
    licence_required: ClassVar[bool] = False

    @abstractmethod
    def values(self, signals: FileSignals) -> tuple[str, ...]:
        """The canonical (lowercase hex) values this hasher put into ``signals``; empty
        when it did not apply to the file."""

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.settings == self.settings

    def __hash__(self) -> int:
        return hash((type(self), self.settings))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __reduce__(self) -> tuple[Any, ...]:
        # Every task sent to a worker carries its hashers: a built-in one travels as its
        # name, any other as its class and plain settings (not a pickled pydantic model).
        if any(self is builtin for builtin in BUILTIN_HASHERS):
            return (builtin_hasher, (self.name,))
        return (_rebuilt, (type(self), self.settings.model_dump(), dict(self.credentials)))


class Digest(Protocol):
    """A running digest, as ``hashlib`` makes them."""

    def update(self, data: bytes | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


class ExactHasher(Hasher):
    """Hashes a file's exact bytes. It applies to every file, decodable or not; the
    kernel feeds each chunk of the file to every exact hasher in one pass."""

    @abstractmethod
    def digest(self) -> Digest:
        """A new running digest; ``hexdigest()`` is the value once every byte was fed."""

    def values(self, signals: FileSignals) -> tuple[str, ...]:
        return (signals.exact(self.algorithm),)


class MediaHasher(Hasher):
    """Hashes the decoded content of the formats it recognises."""

    #: what it decodes, as reasons name it ("not an image format on the allowlist")
    media: ClassVar[str]

    @abstractmethod
    def applies(self, head: bytes) -> bool:
        """Whether a file starting with ``head`` (its first ``decode.SNIFF_BYTES`` bytes)
        is in a format this hasher decodes, from its signature alone. Cheap; never
        raises. A file no hasher applies to is exact-hashed as it streams by, never
        held in memory whole."""

    @abstractmethod
    def add(self, data: bytes, signals: FileSignals, options: HashOptions) -> FileSignals:
        """``signals`` (the exact hashes and whatever hashers before it added) with this
        hasher's hashes of ``data`` and what it learnt of the file (format, size).

        Runs in an isolated worker under memory and time limits. Raises
        ``decode.UnsupportedFormat`` when the content is not in its format after all and
        ``decode.DecodeError`` when it may not or cannot be decoded; anything else it
        raises makes the file ``undecodable`` too, and costs that file only.
        """


class _Hashlib(ExactHasher):
    terms = "standard cryptographic hash; no licence needed"

    def digest(self) -> Digest:
        return hashlib.new(str(self.algorithm), usedforsecurity=False)


class Md5Hasher(_Hashlib):
    name = "md5"
    algorithm = Algorithm.MD5
    description = "MD5 of the file's bytes (most CSAM hash lists carry it)"


class Sha1Hasher(_Hashlib):
    name = "sha1"
    algorithm = Algorithm.SHA1
    description = "SHA-1 of the file's bytes"


class Sha256Hasher(_Hashlib):
    name = "sha256"
    algorithm = Algorithm.SHA256
    description = "SHA-256 of the file's bytes"


class PdqHasher(MediaHasher):
    name = "pdq"
    algorithm = Algorithm.PDQ
    media = "image"
    description = "Meta's PDQ perceptual hash (pdqhash) of images on the format allowlist"
    terms = "PDQ is BSD-licensed by Meta"

    def applies(self, head: bytes) -> bool:
        return sniff(head) is not None

    def add(self, data: bytes, signals: FileSignals, options: HashOptions) -> FileSignals:
        return pdqfile.add_pdq(data, signals, options)

    def values(self, signals: FileSignals) -> tuple[str, ...]:
        return tuple(pdq.value for pdq in signals.pdq)


class VpdqSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: seconds between sampled frames; the reference samples one frame a second
    seconds_per_hash: float = Field(default=1.0, gt=0)


class VpdqHasher(MediaHasher):
    """vPDQ of videos on the container allowlist (``hashing.video``: PyAV probes and
    caps, Meta's ``vpdq`` hashes). Without the ``video`` extra a video is
    ``unsupported``, saying so."""

    name = "vpdq"
    algorithm = Algorithm.VPDQ
    media = "video"
    description = "Meta's vPDQ (vpdq) of videos: PDQ of one frame a second, with timestamps"
    terms = "vPDQ is BSD-licensed by Meta"
    Settings = VpdqSettings

    def applies(self, head: bytes) -> bool:
        return video.sniff_video(head) is not None

    def add(self, data: bytes, signals: FileSignals, options: HashOptions) -> FileSignals:
        settings = self.settings
        assert isinstance(settings, VpdqSettings)
        limits = video.VideoLimits(
            max_pixels=min(options.max_pixels, video.MAX_VIDEO_PIXELS),
            seconds_per_hash=settings.seconds_per_hash,
        )
        info, frames = video.hash_video(data, limits)
        return dataclasses.replace(signals, vpdq=frames, video=info)

    def values(self, signals: FileSignals) -> tuple[str, ...]:
        return tuple(frame.value for frame in signals.vpdq)


_NONE: dict[str, SecretStr] = {}

#: md5, sha1, sha256, pdq and vpdq: what the kernel runs when it is given no other
#: hashers (vpdq reports a video ``unsupported`` where the video extra is not installed)
BUILTIN_HASHERS: tuple[Hasher, ...] = (
    *(cls(NoSettings(), _NONE) for cls in (Md5Hasher, Sha1Hasher, Sha256Hasher, PdqHasher)),
    VpdqHasher(VpdqSettings(), _NONE),
)


def builtin_hasher(name: str) -> Hasher:
    """The built-in hasher ``name`` (how one is unpickled in a worker)."""
    (found,) = (h for h in BUILTIN_HASHERS if h.name == name)
    return found


def _rebuilt(
    cls: type[Hasher], settings: dict[str, Any], credentials: dict[str, SecretStr]
) -> Hasher:
    return cls(cls.Settings.model_validate(settings), credentials)


def checked(hashers: Iterable[Hasher]) -> tuple[Hasher, ...]:
    """``hashers`` as the kernel takes them: exact hashers first, each exact algorithm
    that ``FileSignals`` holds exactly once. ``PluginError`` says what is wrong: the
    exact hashes cannot be switched off, as every list's MD5/SHA entries are matched
    with them and a file that was not hashed must never pass for one that did not match.
    """
    given = tuple(hashers)
    for hasher in given:
        if not isinstance(hasher, ExactHasher | MediaHasher):
            raise PluginError(
                f"hasher {hasher.name!r} subclasses neither ExactHasher nor MediaHasher"
            )
    exact = [h.algorithm for h in given if isinstance(h, ExactHasher)]
    if sorted(exact) != sorted(EXACT_ALGORITHMS):
        missing = sorted(set(EXACT_ALGORITHMS) - set(exact))
        raise PluginError(
            "the exact hashers md5, sha1 and sha256 must each be enabled once "
            f"(missing: {', '.join(missing) or 'none'}; given: {', '.join(exact)})"
        )
    return tuple(h for h in given if isinstance(h, ExactHasher)) + tuple(
        h for h in given if isinstance(h, MediaHasher)
    )


def enabled_hashers(registry: Registry) -> tuple[Hasher, ...]:
    """The hashers ``registry`` enables, configured, for ``HashOptions.hashers``.

    Hashers take no settings or credentials yet. ``PluginError`` when one cannot be
    configured or the enabled set leaves an exact hash out (see ``checked``).
    """
    configured: list[Hasher] = []
    for adapter in registry.enabled(AdapterKind.HASHER):
        hasher = adapter.configure({}, {})
        if not isinstance(hasher, Hasher):
            raise PluginError(f"hasher {adapter.name!r} is not a Hasher")
        configured.append(hasher)
    return checked(configured)
