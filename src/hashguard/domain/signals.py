"""Signals: the vetted hash algorithms we drive and the hashes they produce for one file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hashguard.domain.video import (
    VideoInfo,
    VpdqFrame,
    video_from_json,
    video_to_json,
    vpdq_from_json,
    vpdq_to_json,
)

#: PDQ's own recommendation (pdq/README.md): hashes of quality <= 49 are unreliable.
PDQ_MIN_QUALITY = 50


class PdqMode(StrEnum):
    """How pixels reach PDQ. Persisted with each scan run; never rename a value.

    ``reference``: full-resolution pixels exactly as threatexchange/HMA feed pdqhash
    (bit-identical hashes). ``fast``: luma decoded at reduced size (JPEG DCT scaling)
    before the same reference PDQ code, held to the fidelity gate in
    ``hashguard.hashing.fidelity``.
    """

    FAST = "fast"
    REFERENCE = "reference"


#: A ``fast`` hash within a bank's threshold plus this many bits of a list entry is
#: confirmed with the file's reference hash, which then decides (the matcher's ``near``).
#: The fast path is taken only where fast and reference hashes of a file differ by at
#: most about 10 bits (large JPEGs whose fast hash has quality 100; the fidelity gate
#: measures it), so a file the reference finds is never missed by the default mode.
FAST_CONFIRM_MARGIN = 10


class Algorithm(StrEnum):
    """Persisted algorithm names; never rename a member's value."""

    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    PDQ = "pdq"
    #: Meta's video PDQ: one PDQ hash per sampled frame (``domain.video.VpdqFrame``)
    VPDQ = "vpdq"

    @property
    def hex_length(self) -> int:
        return _HEX_LENGTH[self]

    @property
    def is_exact(self) -> bool:
        return self in EXACT_ALGORITHMS


#: a vPDQ value is one frame's PDQ hash (a list entry is a set of them)
_HEX_LENGTH = {
    Algorithm.MD5: 32,
    Algorithm.SHA1: 40,
    Algorithm.SHA256: 64,
    Algorithm.PDQ: 64,
    Algorithm.VPDQ: 64,
}

EXACT_ALGORITHMS = (Algorithm.MD5, Algorithm.SHA1, Algorithm.SHA256)

#: Names of PDQ's eight dihedral variants, in the order pdqhash returns them.
DIHEDRAL_NAMES = (
    "original",
    "rotate90",
    "rotate180",
    "rotate270",
    "flip_x",
    "flip_y",
    "flip_plus1",
    "flip_minus1",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class PdqHash:
    """The PDQ hash of one frame, with PDQ's quality score.

    ``dihedral`` holds the hashes of the seven other rotations/mirrors (in
    ``DIHEDRAL_NAMES[1:]`` order) when dihedral hashing was asked for, else is empty.
    ``mode`` says how the pixels reached PDQ: only a ``reference`` hash is the one HMA
    and list holders compute, and only such a hash may leave hashguard.
    """

    value: str
    quality: int
    mode: PdqMode
    frame: int = 0
    dihedral: tuple[str, ...] = ()
    #: seconds from the start at which the frame is first shown: set for the sampled
    #: frames of an animated image hashed like a video (``hashing.animation``), else None
    timestamp: float | None = None

    @property
    def low_quality(self) -> bool:
        """Low-quality hashes are recorded but never used for distance matching."""
        return self.quality < PDQ_MIN_QUALITY


@dataclass(frozen=True, kw_only=True, slots=True)
class FileSignals:
    """Everything hashed from one file: exact hashes of its bytes, PDQ of its pixels.

    ``pdq`` is empty when the file is not a decodable image. It holds the hashes the
    file was matched with, in the scan's mode. ``pdq_reference`` holds reference-mode
    hashes of the same frames when ``pdq`` was made in another mode and an exit needed
    them (``hashguard.hashing.reference``); it is empty otherwise. Only
    ``reference_pdq`` may leave hashguard (webhooks, evidence, remote lookups, lists).
    """

    size: int
    md5: str
    sha1: str
    sha256: str
    pdq: tuple[PdqHash, ...] = ()
    image_format: str | None = None
    width: int | None = None
    height: int | None = None
    pdq_reference: tuple[PdqHash, ...] = ()
    #: the vPDQ features of a video's sampled frames (empty for anything else)
    vpdq: tuple[VpdqFrame, ...] = ()
    #: the probed container of a video (None for anything else)
    video: VideoInfo | None = None

    def __post_init__(self) -> None:
        if any(p.mode is not PdqMode.REFERENCE for p in self.pdq_reference):
            raise NotReference("pdq_reference holds only reference-mode PDQ hashes")

    @property
    def reference_pdq(self) -> tuple[PdqHash, ...]:
        """The reference-mode PDQ hashes of this file, the only ones that may leave
        hashguard: ``pdq_reference`` when computed, else those of ``pdq`` made in
        reference mode. A fast-mode hash is never among them."""
        if self.pdq_reference:
            return self.pdq_reference
        return tuple(p for p in self.pdq if p.mode is PdqMode.REFERENCE)

    @property
    def needs_reference(self) -> bool:
        """True when some frame's PDQ hash was not made in reference mode and no
        reference hashes were computed for it: an exit would have to drop it."""
        return not self.pdq_reference and any(p.mode is not PdqMode.REFERENCE for p in self.pdq)

    def exact(self, algorithm: Algorithm) -> str:
        if algorithm is Algorithm.MD5:
            return self.md5
        if algorithm is Algorithm.SHA1:
            return self.sha1
        if algorithm is Algorithm.SHA256:
            return self.sha256
        raise ValueError(f"{algorithm} is not an exact-hash algorithm")


class NotReference(ValueError):
    """A PDQ hash that is not a reference-mode hash was about to leave hashguard."""


def leaving(hashes: Iterable[PdqHash]) -> tuple[PdqHash, ...]:
    """The guard of every exit: ``hashes`` as they are when all are reference-mode
    hashes; ``NotReference`` otherwise (a fast hash never leaves, not even dropped
    silently where a caller chose the hashes)."""
    chosen = tuple(hashes)
    for pdq in chosen:
        if pdq.mode is not PdqMode.REFERENCE:
            raise NotReference(f"a {pdq.mode} PDQ hash may not leave hashguard")
    return chosen


def pdq_to_json(pdq: PdqHash) -> dict[str, Any]:
    """The one stored JSON shape of a PDQ hash (dihedral variants are never stored)."""
    shape = {"value": pdq.value, "quality": pdq.quality, "frame": pdq.frame, "mode": str(pdq.mode)}
    if pdq.timestamp is not None:  # only an animation's frames have one: others keep their shape
        shape["timestamp"] = pdq.timestamp
    return shape


def pdq_from_json(data: Mapping[str, Any]) -> PdqHash:
    """Read ``pdq_to_json``'s shape (or ``pdq_shown``'s, whose ``hash`` is the value).
    Hashes stored before modes were labelled came from the then default, ``fast``: they
    are read as such, so none passes for a reference hash."""
    return PdqHash(
        value=data["value"] if "value" in data else data["hash"],
        quality=data["quality"],
        frame=data.get("frame", 0),
        mode=PdqMode(data.get("mode", PdqMode.FAST)),
        timestamp=None if data.get("timestamp") is None else float(data["timestamp"]),
    )


#: Marks, in a stored list of PDQ hashes, the reference hashes computed beside the hashes
#: a file was matched with (``FileSignals.pdq_reference``).
_REFERENCE_COPY = "reference_copy"


def pdq_list_to_json(signals: FileSignals) -> list[dict[str, Any]]:
    """``pdq`` and ``pdq_reference`` in one stored list (for stores with one column)."""
    return [pdq_to_json(p) for p in signals.pdq] + [
        {**pdq_to_json(p), _REFERENCE_COPY: True} for p in signals.pdq_reference
    ]


def pdq_list_from_json(
    items: Iterable[Mapping[str, Any]],
) -> tuple[tuple[PdqHash, ...], tuple[PdqHash, ...]]:
    """``pdq_list_to_json``'s list read back as ``(pdq, pdq_reference)``."""
    listed = list(items)
    return (
        tuple(pdq_from_json(i) for i in listed if not i.get(_REFERENCE_COPY)),
        tuple(pdq_from_json(i) for i in listed if i.get(_REFERENCE_COPY)),
    )


def pdq_shown(pdq: PdqHash, *, dihedral: bool = False) -> dict[str, Any]:
    """``pdq_to_json``'s shape as every output shows it: also ``hash`` (the value, under
    the key scan outputs have always used), ``low_quality`` and, when asked for and
    computed, the seven ``dihedral`` variants by name."""
    return {
        **pdq_to_json(pdq),
        "hash": pdq.value,
        "low_quality": pdq.low_quality,
        **(
            {"dihedral": dict(zip(DIHEDRAL_NAMES[1:], pdq.dihedral, strict=True))}
            if dihedral and pdq.dihedral
            else {}
        ),
    }


def signals_to_json(signals: FileSignals) -> dict[str, Any]:
    """The one JSON shape of a file's signals, as stores keep it (a case's ``signals``,
    a scan result's columns). ``pdq_reference`` is there only when reference hashes were
    computed beside ``pdq`` (a reader takes a missing one as empty)."""
    return {
        "size": signals.size,
        "md5": signals.md5,
        "sha1": signals.sha1,
        "sha256": signals.sha256,
        "image_format": signals.image_format,
        "width": signals.width,
        "height": signals.height,
        "pdq": [pdq_to_json(p) for p in signals.pdq],
        **(
            {"pdq_reference": [pdq_to_json(p) for p in signals.pdq_reference]}
            if signals.pdq_reference
            else {}
        ),
        **_video_json(signals),
    }


def _video_json(signals: FileSignals) -> dict[str, Any]:
    """A video's keys, present only for a video (other files' stored shape is unchanged)."""
    if signals.video is None and not signals.vpdq:
        return {}
    return {
        "video": None if signals.video is None else video_to_json(signals.video),
        "vpdq": [vpdq_to_json(f) for f in signals.vpdq],
    }


def signals_shown(signals: FileSignals, *, dihedral: bool = False) -> dict[str, Any]:
    """``signals_to_json``'s shape as the CLI and the API show it (scan and hash output,
    cases): each hash as ``pdq_shown``, and ``format``, the key scan outputs have always
    used for ``image_format``."""
    return {
        **signals_to_json(signals),
        **({"vpdq_frames": len(signals.vpdq)} if signals.vpdq else {}),
        "format": signals.image_format,
        "pdq": [pdq_shown(p, dihedral=dihedral) for p in signals.pdq],
        **(
            {"pdq_reference": [pdq_shown(p) for p in signals.pdq_reference]}
            if signals.pdq_reference
            else {}
        ),
    }


def signals_from_json(data: Mapping[str, Any]) -> FileSignals:
    """Read ``signals_to_json``'s or ``signals_shown``'s shape, and rows stored before
    ``pdq_reference`` and PDQ modes existed."""
    return FileSignals(
        size=data["size"],
        md5=data["md5"],
        sha1=data["sha1"],
        sha256=data["sha256"],
        pdq=tuple(pdq_from_json(p) for p in data.get("pdq") or ()),
        pdq_reference=tuple(pdq_from_json(p) for p in data.get("pdq_reference") or ()),
        image_format=data.get("image_format", data.get("format")),
        width=data.get("width"),
        height=data.get("height"),
        vpdq=tuple(vpdq_from_json(f) for f in data.get("vpdq") or ()),
        video=None if data.get("video") is None else video_from_json(data["video"]),
    )
