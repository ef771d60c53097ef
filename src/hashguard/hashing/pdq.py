"""PDQ through Meta's reference code, as threatexchange drives it.

``pdq_hash`` takes what ``pdqhash.compute`` takes (H x W x C uint8 pixels, or a 2-D luma
frame, which pdqhash would see stacked to three channels) and returns pdqhash's hash
bit for bit. It calls PDQ's C++ entry points directly when the binding in ``pdqcore``
is present and agrees with pdqhash's wrapper on probe frames; otherwise the wrapper.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt
import pdqhash

from hashguard.domain.signals import PdqHash, PdqMode
from hashguard.hashing import pdqcore


def _to_hex(bits: npt.NDArray[np.integer]) -> str:
    # pdqhash returns the 256 bits most-significant first, exactly the order
    # threatexchange turns into its 64-character lowercase hex string.
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def _wrapper(
    pixels: npt.NDArray[np.uint8], *, frame: int, dihedral: bool, mode: PdqMode
) -> PdqHash:
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=2)
    if dihedral:
        vectors, quality = pdqhash.compute_dihedral(pixels)
        hashes = [_to_hex(v) for v in vectors]
        return PdqHash(
            value=hashes[0],
            quality=int(quality),
            frame=frame,
            dihedral=tuple(hashes[1:]),
            mode=mode,
        )
    vector, quality = pdqhash.compute(pixels)
    return PdqHash(value=_to_hex(vector), quality=int(quality), frame=frame, mode=mode)


@cache
def _core() -> pdqcore.Core | None:
    core = pdqcore.load()
    if core is None:
        return None
    rng = np.random.default_rng(20261128)
    probes = (
        rng.integers(0, 256, (48, 64), dtype=np.uint8),
        rng.integers(0, 256, (40, 56, 3), dtype=np.uint8),
        rng.integers(0, 256, (33, 29, 4), dtype=np.uint8),
    )
    for probe in probes:
        expected = _wrapper(probe, frame=0, dihedral=True, mode=PdqMode.REFERENCE)
        hashes, quality = pdqcore.dihedral_pixels(core, probe)
        if pdqcore.hash_pixels(core, probe) != (expected.value, expected.quality) or (
            hashes != [expected.value, *expected.dihedral] or quality != expected.quality
        ):
            return None
    return core


def core_available() -> bool:
    """True when PDQ's C++ is called directly rather than through pdqhash's wrapper."""
    return _core() is not None


def pdq_hash(
    pixels: npt.NDArray[np.uint8],
    *,
    mode: PdqMode,
    frame: int = 0,
    dihedral: bool = False,
) -> PdqHash:
    """Hash pixels (H x W x C, C >= 3) or a luma frame (H x W); with ``dihedral`` also the
    7 rotations/mirrors, which PDQ derives from the same DCT (the first equals the hash).
    ``mode`` labels the hash with how its pixels were prepared (the caller knows)."""
    core = _core()
    if core is None:
        return _wrapper(pixels, frame=frame, dihedral=dihedral, mode=mode)
    if dihedral:
        hashes, quality = pdqcore.dihedral_pixels(core, pixels)
        return PdqHash(
            value=hashes[0], quality=quality, frame=frame, dihedral=tuple(hashes[1:]), mode=mode
        )
    value, quality = pdqcore.hash_pixels(core, pixels)
    return PdqHash(value=value, quality=quality, frame=frame, mode=mode)
