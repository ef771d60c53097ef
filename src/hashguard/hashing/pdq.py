"""PDQ through Meta's reference code: pdqhash as threatexchange drives it, or its C++ core directly.

Two entry points, two contracts:

- ``pdq_hash`` takes the H x W x C pixels threatexchange would give ``pdqhash.compute``
  and returns the identical hash (the ``reference`` mode).
- ``pdq_hash_grey`` takes a 2-D luma frame (the ``fast`` mode's reduced frame) and returns
  what ``pdqhash.compute`` would give for it, through the C++ entry point when the
  binding in ``pdqcore`` is present and agrees with the wrapper on a probe frame.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt
import pdqhash

from hashguard.domain.signals import PdqHash
from hashguard.hashing import pdqcore


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


@cache
def _core() -> pdqcore.Core | None:
    core = pdqcore.load()
    if core is None:
        return None
    probe = np.random.default_rng(20261128).integers(0, 256, (48, 64), dtype=np.uint8)
    expected = pdq_hash(np.stack([probe] * 3, axis=2), dihedral=True)
    hashes, quality = pdqcore.dihedral_grey(core, probe)
    agrees = (
        pdqcore.hash_grey(core, probe) == (expected.value, expected.quality)
        and hashes == [expected.value, *expected.dihedral]
        and quality == expected.quality
    )
    return core if agrees else None


def core_available() -> bool:
    """True when the fast path calls PDQ's C++ directly rather than through the wrapper."""
    return _core() is not None


def pdq_hash_grey(
    grey: npt.NDArray[np.uint8], *, frame: int = 0, dihedral: bool = False
) -> PdqHash:
    """Hash a 2-D uint8 luma frame: the same hash as ``pdq_hash`` of it stacked to RGB."""
    core = _core()
    if core is None:
        return pdq_hash(np.stack([grey] * 3, axis=2), frame=frame, dihedral=dihedral)
    if dihedral:
        hashes, quality = pdqcore.dihedral_grey(core, grey)
        return PdqHash(value=hashes[0], quality=quality, frame=frame, dihedral=tuple(hashes[1:]))
    value, quality = pdqcore.hash_grey(core, grey)
    return PdqHash(value=value, quality=quality, frame=frame)
