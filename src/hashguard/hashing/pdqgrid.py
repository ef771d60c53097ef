"""The fast mode's last preprocessing step: a luma frame down to PDQ's own 64 x 64 grid.

PDQ's reference code blurs its whole input (the Jarosz filter: two box passes per axis,
``ceil(side / 128)`` wide) and keeps 64 x 64 of the blurred pixels; on a 432 x 576
frame that costs more than decoding it. It also takes a 64 x 64 frame as already
downsampled ("for video-frame processing when we've already used ffmpeg to downsample
for us") and skips straight to its DCT, quality metric and bits. This module makes
that 64 x 64 frame: a Gaussian anti-alias filter with the variance of the reference's
blur at the *original* image size (scaled to the decoded frame), evaluated only at the
pixels PDQ's decimation would keep. It is preprocessing in front of the reference code,
not a hash: the hash is still Meta's, and the fidelity gate
(``hashguard.hashing.fidelity``) measures the result against the full-image reference.

Values are rounded to uint8, so PDQ's single-hash and dihedral entry points (the latter
runs a window-1 box over a 64 x 64 frame, exact on integers) see the same pixels.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import numpy.typing as npt

#: PDQ's downsampled frame is GRID x GRID.
GRID = 64
#: The reference's blur: box width ceil(side / 128), two passes per axis.
_WINDOW_DIVISOR = 128
_PASSES = 2
#: Gaussian taps cover this many standard deviations either side.
_REACH = 3.0
#: Frames this small are PDQ's "unhashable" case; they pass through unchanged.
_MIN_SIDE = 5


@lru_cache(maxsize=256)
def _taps(decoded: int, original: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
    """Indices (GRID x taps) into a decoded axis and their normalised Gaussian weights."""
    window = (original + _WINDOW_DIVISOR - 1) // _WINDOW_DIVISOR
    # Variance of one box of `window` pixels is (window^2 - 1) / 12, per pass.
    sigma = math.sqrt(_PASSES * (window * window - 1) / 12) * decoded / original
    # The pixel the reference's decimation keeps for each grid cell.
    centres = ((np.arange(GRID) + 0.5) * decoded / GRID).astype(np.intp)
    reach = math.ceil(_REACH * sigma)
    offsets = np.arange(-reach, reach + 1)
    indices = centres[:, np.newaxis] + offsets[np.newaxis, :]
    # A window of 1 (sides up to 128 px) is no blur: sigma 0, one tap, plain decimation.
    profile = np.exp(-0.5 * (offsets / max(sigma, 1e-9)) ** 2)
    inside = (indices >= 0) & (indices < decoded)
    # Taps past the edge are dropped and the rest renormalised, as PDQ's box shrinks.
    weights = np.where(inside, profile[np.newaxis, :], 0.0)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.clip(indices, 0, decoded - 1), weights.astype(np.float32)


def sample(
    luma: npt.NDArray[np.uint8], original_width: int, original_height: int
) -> npt.NDArray[np.uint8]:
    """The GRID x GRID frame PDQ would downsample ``luma`` to, had it been decoded at
    ``original_width`` x ``original_height`` (``luma`` may be a reduced decode of it)."""
    height, width = luma.shape
    if min(height, width) < _MIN_SIDE:
        return luma
    row_indices, row_weights = _taps(height, original_height)
    col_indices, col_weights = _taps(width, original_width)
    rows = np.einsum("ik,ikj->ij", row_weights, luma[row_indices].astype(np.float32))
    grid = np.einsum("jk,ijk->ij", col_weights, rows[:, col_indices])
    pixels: npt.NDArray[np.uint8] = np.clip(np.rint(grid), 0, 255).astype(np.uint8)
    return pixels
