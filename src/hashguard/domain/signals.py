"""Signals: the vetted hash algorithms we drive and the hashes they produce for one file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

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


class Algorithm(StrEnum):
    """Persisted algorithm names; never rename a member's value."""

    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    PDQ = "pdq"

    @property
    def hex_length(self) -> int:
        return _HEX_LENGTH[self]

    @property
    def is_exact(self) -> bool:
        return self is not Algorithm.PDQ


_HEX_LENGTH = {Algorithm.MD5: 32, Algorithm.SHA1: 40, Algorithm.SHA256: 64, Algorithm.PDQ: 64}

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

    @property
    def low_quality(self) -> bool:
        """Low-quality hashes are recorded but never used for distance matching."""
        return self.quality < PDQ_MIN_QUALITY


@dataclass(frozen=True, kw_only=True, slots=True)
class FileSignals:
    """Everything hashed from one file: exact hashes of its bytes, PDQ of its pixels.

    ``pdq`` is empty when the file is not a decodable image.
    """

    size: int
    md5: str
    sha1: str
    sha256: str
    pdq: tuple[PdqHash, ...] = ()
    image_format: str | None = None
    width: int | None = None
    height: int | None = None

    def exact(self, algorithm: Algorithm) -> str:
        if algorithm is Algorithm.MD5:
            return self.md5
        if algorithm is Algorithm.SHA1:
            return self.sha1
        if algorithm is Algorithm.SHA256:
            return self.sha256
        raise ValueError(f"{algorithm} is not an exact-hash algorithm")


def pdq_to_json(pdq: PdqHash) -> dict[str, Any]:
    """The one stored JSON shape of a PDQ hash (dihedral variants are never stored)."""
    return {"value": pdq.value, "quality": pdq.quality, "frame": pdq.frame, "mode": str(pdq.mode)}


def pdq_from_json(data: Mapping[str, Any]) -> PdqHash:
    """Read ``pdq_to_json``'s shape. Hashes stored before modes were labelled came from the
    then default, ``fast``: they are read as such, so none passes for a reference hash."""
    return PdqHash(
        value=data["value"],
        quality=data["quality"],
        frame=data.get("frame", 0),
        mode=PdqMode(data.get("mode", PdqMode.FAST)),
    )
