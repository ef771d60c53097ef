"""Signals: the vetted hash algorithms we drive and the hashes they produce for one file."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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
    """

    value: str
    quality: int
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
