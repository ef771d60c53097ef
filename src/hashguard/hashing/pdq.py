"""PDQ through Meta's reference code (the ``pdqhash`` bindings), as threatexchange drives it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pdqhash

from hashguard.domain.signals import PdqHash


def _to_hex(bits: npt.NDArray[np.integer]) -> str:
    # pdqhash returns the 256 bits most-significant first, exactly the order
    # threatexchange turns into its 64-character lowercase hex string.
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def pdq_hash(pixels: npt.NDArray[np.uint8], *, frame: int = 0, dihedral: bool = False) -> PdqHash:
    """Hash an H x W x C (C >= 3) uint8 array; with ``dihedral`` also its 7 rotations/mirrors.

    pdqhash computes the dihedral variants from the same DCT, so they cost little
    more than the single hash, and the first variant equals the plain hash.
    """
    if dihedral:
        vectors, quality = pdqhash.compute_dihedral(pixels)
        hashes = [_to_hex(v) for v in vectors]
        return PdqHash(
            value=hashes[0], quality=int(quality), frame=frame, dihedral=tuple(hashes[1:])
        )
    vector, quality = pdqhash.compute(pixels)
    return PdqHash(value=_to_hex(vector), quality=int(quality), frame=frame)
