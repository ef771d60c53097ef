"""The hashing kernel: one file (or upload) in, every signal we compute and its typed problem out.

Runs inside an isolated worker process. The file is read once; its bytes feed the
exact hashers and the decoder.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from hashguard.domain.scans import Outcome, ScanOptions
from hashguard.domain.signals import FileSignals, PdqHash, PdqMode
from hashguard.hashing.decode import (
    SNIFF_BYTES,
    Decoded,
    DecodeError,
    UnsupportedFormat,
    decode,
    sniff,
)
from hashguard.hashing.exact import ExactHashes, hash_bytes, hash_stream
from hashguard.hashing.pdq import pdq_hash
from hashguard.hashing.pdqgrid import sample
from hashguard.safefs import OutsideRoots, open_resolved

#: Image files larger than this are exact-hashed but never decoded.
DEFAULT_MAX_IMAGE_BYTES = 256 * 1024 * 1024
#: A fast-path hash of lower quality is recomputed on the reference path. On real JPEGs
#: from 768 px, every file that drifted 40 bits or more had a quality below 100, and
#: photos (the files the fast path is for) score 100.
FAST_QUALITY = 100


@dataclass(frozen=True, kw_only=True, slots=True)
class HashOptions:
    max_pixels: int
    max_frames: int = 1
    dihedral: bool = False
    pdq_mode: PdqMode = PdqMode.FAST
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    #: also compute reference-mode PDQ hashes (``FileSignals.pdq_reference``) whenever a
    #: frame's hash was made in another mode: for a remote matcher that is sent PDQ
    #: hashes of every file (only reference hashes leave hashguard)
    also_reference: bool = False
    #: real folder paths a scan is confined to: files are opened without following any
    #: symlink swapped in after the check (``hashguard.safefs.open_resolved``)
    confine: tuple[str, ...] | None = None

    @classmethod
    def for_scan(
        cls,
        options: ScanOptions,
        *,
        also_reference: bool = False,
        confine: Sequence[str] | None = None,
    ) -> HashOptions:
        return cls(
            max_pixels=options.max_pixels,
            max_frames=options.max_frames,
            dihedral=options.dihedral,
            pdq_mode=options.pdq_mode,
            also_reference=also_reference,
            confine=None if confine is None else tuple(confine),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class HashOutput:
    """Signals of one input and, when the input was not a fully hashed image, why.

    ``problem`` is None for a decoded image; ``unsupported`` for a file outside the
    allowlist; ``undecodable`` for an allowed format that could not be decoded; ``error``
    when the bytes could not be read (then ``signals`` is None).
    """

    signals: FileSignals | None
    problem: Outcome | None = None
    reason: str | None = None


def _signals(exact: ExactHashes) -> FileSignals:
    return FileSignals(size=exact.size, md5=exact.md5, sha1=exact.sha1, sha256=exact.sha256)


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


def hash_path(path: str, options: HashOptions) -> HashOutput:
    """Hash the file at ``path``; never raises for anything the file itself can cause."""
    try:
        fd = open_input(path, options.confine)
    except OutsideRoots:
        return HashOutput(signals=None, problem=Outcome.UNSUPPORTED, reason=OUTSIDE_ROOTS)
    except OSError as exc:  # SymlinkInPath: a symlink swapped in after the check
        return HashOutput(
            signals=None, problem=Outcome.ERROR, reason=f"cannot open: {exc.strerror}"
        )
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
                    signals=_signals(hash_bytes(b"")),
                    problem=Outcome.UNSUPPORTED,
                    reason="empty file",
                )
            if sniff(head) is None:
                return HashOutput(
                    signals=_signals(hash_stream(stream, prefix=head)),
                    problem=Outcome.UNSUPPORTED,
                    reason="not an image format on the allowlist",
                )
            if info.st_size > options.max_image_bytes:
                return HashOutput(
                    signals=_signals(hash_stream(stream, prefix=head)),
                    problem=Outcome.UNDECODABLE,
                    reason=f"image file of {info.st_size} bytes is over the "
                    f"{options.max_image_bytes} byte decode limit",
                )
            stream.seek(0)  # one read into one buffer: no second copy of a large file
            data = stream.read()
    except OSError as exc:
        return HashOutput(
            signals=None, problem=Outcome.ERROR, reason=f"cannot read: {exc.strerror}"
        )
    return hash_data(data, options)


def _pdq(decoded: Decoded, options: HashOptions) -> tuple[PdqHash, ...]:
    frames = decoded.frames
    if decoded.mode is PdqMode.FAST:
        frames = tuple(
            sample(frame, *size) for frame, size in zip(frames, decoded.sizes, strict=True)
        )
    # Labelled with the path taken: a file asked for in fast mode that took the
    # reference path (see ``decode.fast_applies``) has a reference hash.
    return tuple(
        pdq_hash(frame, frame=index, dihedral=options.dihedral, mode=decoded.mode)
        for index, frame in enumerate(frames)
    )


def hash_data(data: bytes, options: HashOptions) -> HashOutput:
    """Hash an upload held in memory: exact hashes always, PDQ when it decodes."""
    exact = _signals(hash_bytes(data))
    try:
        decoded = decode(
            data,
            max_pixels=options.max_pixels,
            max_frames=options.max_frames,
            mode=options.pdq_mode,
        )
        pdq = _pdq(decoded, options)
        if any(frame.quality < FAST_QUALITY for frame in pdq if frame.mode is PdqMode.FAST):
            # Smooth pictures (gradients, plain fields) are where any preprocessing but
            # the reference flips many bits; PDQ marks them with a quality below 100.
            decoded = decode(
                data,
                max_pixels=options.max_pixels,
                max_frames=options.max_frames,
                mode=PdqMode.REFERENCE,
            )
            pdq = _pdq(decoded, options)
    except UnsupportedFormat as exc:
        reason = "empty file" if not data else str(exc)
        return HashOutput(signals=exact, problem=Outcome.UNSUPPORTED, reason=reason)
    except DecodeError as exc:
        return HashOutput(signals=exact, problem=Outcome.UNDECODABLE, reason=str(exc))
    except MemoryError:
        return HashOutput(
            signals=exact, problem=Outcome.UNDECODABLE, reason="hashing exceeded the memory limit"
        )
    except Exception as exc:  # noqa: BLE001 - a PDQ failure on odd pixels costs this file only
        return HashOutput(signals=exact, problem=Outcome.UNDECODABLE, reason=f"PDQ failed: {exc}")
    return HashOutput(
        signals=FileSignals(
            size=exact.size,
            md5=exact.md5,
            sha1=exact.sha1,
            sha256=exact.sha256,
            pdq=pdq,
            image_format=str(decoded.image_format),
            width=decoded.width,
            height=decoded.height,
            pdq_reference=_reference_too(data, options, pdq),
        )
    )


def _reference_too(
    data: bytes, options: HashOptions, pdq: tuple[PdqHash, ...]
) -> tuple[PdqHash, ...]:
    """Reference-mode hashes of every frame when ``also_reference`` asks for them and
    some frame's hash is not one; empty when decoding for them fails (the exits then
    carry no PDQ hash of this file; its outcome is as the first decode made it)."""
    if not options.also_reference or all(p.mode is PdqMode.REFERENCE for p in pdq):
        return ()
    try:
        decoded = decode(
            data,
            max_pixels=options.max_pixels,
            max_frames=options.max_frames,
            mode=PdqMode.REFERENCE,
        )
        return tuple(
            pdq_hash(frame, frame=index, mode=PdqMode.REFERENCE)
            for index, frame in enumerate(decoded.frames)
        )
    except Exception:  # noqa: BLE001 - a decode or PDQ failure here costs these hashes only
        return ()


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
            return HashOutput(signals=_signals(hash_stream(stream)))
    except OSError as exc:
        return HashOutput(
            signals=None, problem=Outcome.ERROR, reason=f"cannot read: {exc.strerror}"
        )
