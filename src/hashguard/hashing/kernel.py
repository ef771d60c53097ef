"""The hashing kernel: one file (or upload) in, every hasher's signals and its typed problem out.

Runs inside an isolated worker process. The kernel knows no algorithm: it runs the
hashers it is given (``HashOptions.hashers``, see ``hashguard.hashing.hasher``). The
file is read once; its bytes feed every exact hasher in one pass, and, when a media
hasher applies to its format, that hasher's decoder.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hashguard.domain.scans import Outcome, ScanOptions
from hashguard.domain.signals import FileSignals, PdqMode
from hashguard.hashing.animation import ANIMATION_FRAMES
from hashguard.hashing.decode import SNIFF_BYTES, DecodeError, UnsupportedFormat
from hashguard.hashing.exact import exact_hashers, hash_bytes, hash_stream
from hashguard.hashing.hasher import BUILTIN_HASHERS, Hasher, MediaHasher, checked
from hashguard.safefs import OutsideRoots, open_resolved

#: Media files (images) larger than this are exact-hashed but never decoded.
DEFAULT_MAX_IMAGE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class HashOptions:
    max_pixels: int
    max_frames: int = 1
    dihedral: bool = False
    pdq_mode: PdqMode = PdqMode.FAST
    #: an animated GIF/WebP of more frames is hashed like a video (``hashing.animation``)
    animation_frames: int = ANIMATION_FRAMES
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    #: also compute reference-mode PDQ hashes (``FileSignals.pdq_reference``) whenever a
    #: frame's hash was made in another mode: for a remote matcher that is sent PDQ
    #: hashes of every file (only reference hashes leave hashguard)
    also_reference: bool = False
    #: real folder paths a scan is confined to: files are opened without following any
    #: symlink swapped in after the check (``hashguard.safefs.open_resolved``)
    confine: tuple[str, ...] | None = None
    #: the hashers to run: those the registry enables (``hasher.enabled_hashers``);
    #: exact hashers first (``hasher.checked`` puts them in order and refuses a set that
    #: leaves an exact hash out)
    hashers: tuple[Hasher, ...] = BUILTIN_HASHERS

    def __post_init__(self) -> None:
        if self.hashers is not BUILTIN_HASHERS:
            object.__setattr__(self, "hashers", checked(self.hashers))

    @classmethod
    def for_scan(
        cls,
        options: ScanOptions,
        *,
        also_reference: bool = False,
        confine: Sequence[str] | None = None,
        hashers: Sequence[Hasher] = BUILTIN_HASHERS,
    ) -> HashOptions:
        return cls(
            max_pixels=options.max_pixels,
            max_frames=options.max_frames,
            dihedral=options.dihedral,
            pdq_mode=options.pdq_mode,
            animation_frames=options.animation_frames,
            also_reference=also_reference,
            confine=None if confine is None else tuple(confine),
            hashers=tuple(hashers),
        )

    @property
    def media_hashers(self) -> tuple[MediaHasher, ...]:
        return tuple(h for h in self.hashers if isinstance(h, MediaHasher))


@dataclass(frozen=True, kw_only=True, slots=True)
class HashOutput:
    """Signals of one input and, when the input was not fully hashed, why.

    ``problem`` is None when every media hasher that applies to the input hashed it (a
    decoded image); ``unsupported`` for a file none applies to (outside the allowlist);
    ``undecodable`` for a format one applies to that could not be decoded (the first
    failing hasher's reason); ``error`` when the bytes could not be read (then
    ``signals`` is None).
    """

    signals: FileSignals | None
    problem: Outcome | None = None
    reason: str | None = None


#: a confined scan's file that leads outside its roots
OUTSIDE_ROOTS = "leads outside the scan roots (through a symlink); not read"


def open_input(path: str, confine: Sequence[str] | None) -> int:
    """A descriptor of the file to hash. Within ``confine`` the path's symlinks are
    resolved once, checked to stay inside, and the real path is opened with
    ``O_NOFOLLOW`` at every component: a symlink swapped in meanwhile is not followed.
    Raises ``OutsideRoots`` or ``OSError``."""
    # O_NONBLOCK: opening a FIFO must not hang; it has no effect on regular files.
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    if confine is None:
        return os.open(path, flags)
    return open_resolved(path, flags, confine=confine)


def applying(options: HashOptions, head: bytes) -> tuple[MediaHasher, ...]:
    """The media hashers that decode a file starting with ``head``."""
    return tuple(h for h in options.media_hashers if h.applies(head))


def not_decoded(options: HashOptions) -> str:
    """Why a file no media hasher applies to was exact-hashed only."""
    media = sorted({h.media for h in options.media_hashers})
    if not media:
        return "no enabled hasher decodes files (exact hashes only)"
    what = " or ".join(media)
    return f"not {'an' if what[0] in 'aeiou' else 'a'} {what} format on the allowlist"


#: told which media the input is (``MediaHasher.media`` of the hashers that apply, e.g.
#: ``("video",)``) before any is decoded: the isolated worker sets its time limit by it
OnMedia = Callable[[tuple[str, ...]], None]


def hash_path(path: str, options: HashOptions, *, on_media: OnMedia | None = None) -> HashOutput:
    """Hash the file at ``path``; never raises for anything the file itself can cause."""
    try:
        fd = open_input(path, options.confine)
    except OutsideRoots:
        return HashOutput(signals=None, problem=Outcome.UNSUPPORTED, reason=OUTSIDE_ROOTS)
    except OSError as exc:  # SymlinkInPath: a symlink swapped in after the check
        return HashOutput(
            signals=None, problem=Outcome.ERROR, reason=f"cannot open: {exc.strerror}"
        )
    exact = exact_hashers(options.hashers)
    try:
        with os.fdopen(fd, "rb") as stream:
            info = os.fstat(stream.fileno())
            if not stat.S_ISREG(info.st_mode):
                return HashOutput(
                    signals=None, problem=Outcome.UNSUPPORTED, reason="not a regular file"
                )
            head = stream.read(SNIFF_BYTES)
            if not head:
                return HashOutput(
                    signals=hash_bytes(b"", exact),
                    problem=Outcome.UNSUPPORTED,
                    reason="empty file",
                )
            media = applying(options, head)
            if not media:
                return HashOutput(
                    signals=hash_stream(stream, prefix=head, hashers=exact),
                    problem=Outcome.UNSUPPORTED,
                    reason=not_decoded(options),
                )
            if info.st_size > options.max_image_bytes:
                return HashOutput(
                    signals=hash_stream(stream, prefix=head, hashers=exact),
                    problem=Outcome.UNDECODABLE,
                    reason=f"{media[0].media} file of {info.st_size} bytes is over the "
                    f"{options.max_image_bytes} byte decode limit",
                )
            stream.seek(0)  # one read into one buffer: no second copy of a large file
            data = stream.read()
    except OSError as exc:
        return HashOutput(
            signals=None, problem=Outcome.ERROR, reason=f"cannot read: {exc.strerror}"
        )
    return hash_data(data, options, on_media=on_media)


def exact_data(data: bytes, options: HashOptions) -> FileSignals:
    """The exact hashes of ``data``, by the exact hashers of ``options``."""
    return hash_bytes(data, exact_hashers(options.hashers))


def hash_data(data: bytes, options: HashOptions, *, on_media: OnMedia | None = None) -> HashOutput:
    """Hash an upload held in memory: exact hashes always, and the hashes of every media
    hasher that applies to it (PDQ for an image on the allowlist) when it decodes.
    ``on_media`` is told the media of those hashers before the first decodes."""
    signals = exact_data(data, options)
    if not data:
        return HashOutput(signals=signals, problem=Outcome.UNSUPPORTED, reason="empty file")
    media = applying(options, data[:SNIFF_BYTES])
    if not media:
        return HashOutput(signals=signals, problem=Outcome.UNSUPPORTED, reason=not_decoded(options))
    if on_media is not None:
        on_media(tuple(h.media for h in media))
    problem: Outcome | None = None
    reason: str | None = None
    for hasher in media:
        try:
            signals = hasher.add(data, signals, options)
            continue
        except UnsupportedFormat as exc:
            failed, why = Outcome.UNSUPPORTED, str(exc)
        except DecodeError as exc:
            failed, why = Outcome.UNDECODABLE, str(exc)
        except MemoryError:
            failed, why = Outcome.UNDECODABLE, "hashing exceeded the memory limit"
        except Exception as exc:  # noqa: BLE001 - a hasher failing on odd content costs this file only
            failed, why = Outcome.UNDECODABLE, f"{str(hasher.algorithm).upper()} failed: {exc}"
        if problem is None:  # the first hasher that failed says why
            problem, reason = failed, why
    return HashOutput(signals=signals, problem=problem, reason=reason)


def exact_only(path: str, options: HashOptions | None = None) -> HashOutput:
    """Exact hashes only: the fallback after decoding this file killed or hung a worker
    (opened as ``hash_path`` opens it)."""
    try:
        fd = open_input(path, None if options is None else options.confine)
    except OutsideRoots:
        return HashOutput(signals=None, problem=Outcome.UNSUPPORTED, reason=OUTSIDE_ROOTS)
    except OSError as exc:
        return HashOutput(
            signals=None, problem=Outcome.ERROR, reason=f"cannot open: {exc.strerror}"
        )
    try:
        with os.fdopen(fd, "rb") as stream:
            hashers = BUILTIN_HASHERS if options is None else options.hashers
            return HashOutput(signals=hash_stream(stream, hashers=exact_hashers(hashers)))
    except OSError as exc:
        return HashOutput(
            signals=None, problem=Outcome.ERROR, reason=f"cannot read: {exc.strerror}"
        )
