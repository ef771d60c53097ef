"""Direct calls into Meta's reference PDQ C++ as pdqhash compiles it, on float luma we supply.

pdqhash's Python wrapper turns every input into float64 RGB-weighted luma in fresh
numpy arrays and the hash bits into a Python list; on a small frame that wrapper
costs about as much as the hash itself. The C++ entry points it wraps are exported by
the same extension module, so we call them with ctypes on a float32 luma buffer that
we fill exactly as the wrapper would.
This is Meta's code running, not ours: no step of PDQ is re-implemented here. The
float buffers are reused per thread (see ``_Arena``).

If the symbols are missing (another pdqhash build), ``load()`` gives None, and
``hashguard.hashing.pdq`` also refuses a binding whose hashes differ from pdqhash's
wrapper on a probe frame; either way the wrapper is used, with the same hashes.
"""

from __future__ import annotations

import ctypes
import threading

import numpy as np
import numpy.typing as npt
import pdqhash

_HASH = "_ZN8facebook3pdq7hashing23pdqHash256FromFloatLumaEPfS2_iiPA64_fS4_PA16_fRNS1_7Hash256ERi"
_DIHEDRAL = (
    "_ZN8facebook3pdq7hashing33pdqDihedralHash256esFromFloatLuma"
    "EPfS2_iiPA64_fS4_PA16_fS6_PNS1_7Hash256ES8_S8_S8_S8_S8_S8_S8_Ri"
)
_P = ctypes.c_void_p
_INT = ctypes.c_int
_WORDS = 16  # a Hash256 is sixteen uint16 words, least significant first


class Core:
    def __init__(self, library: ctypes.CDLL) -> None:
        self.hash = getattr(library, _HASH)
        self.hash.restype = None
        self.hash.argtypes = [_P, _P, _INT, _INT, _P, _P, _P, _P, _P]
        self.dihedral = getattr(library, _DIHEDRAL)
        self.dihedral.restype = None
        self.dihedral.argtypes = [_P, _P, _INT, _INT, _P, _P, _P, _P, *([_P] * 8), _P]


def _hex(words: npt.NDArray[np.uint16]) -> str:
    # Word 0 holds bits 0-15; threatexchange's hex string is the 256-bit number big-endian.
    return words.astype("<u2").tobytes()[::-1].hex()


class _Arena(threading.local):
    """Per-thread buffers reused from one frame to the next.

    Fresh megabyte-sized buffers per frame come from mmap and cost a page fault per
    4 KiB page, which measured as much time as PDQ's own arithmetic.
    """

    def __init__(self) -> None:
        self.flat = np.empty(0, np.float32)
        self.wide = np.empty(0, np.float64)
        self.b64 = np.empty((64, 64), np.float32)
        self.b16x64 = np.empty((16, 64), np.float32)
        self.b16 = np.empty((16, 16), np.float32)
        self.aux = np.empty((16, 16), np.float32)

    def luma(self, pixels: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.float32], ...]:
        """The frame's float32 luma in a work buffer (PDQ filters it in place), and a
        second buffer of the same shape.

        A 2-D frame is luma already. For H x W x C pixels the luma is computed with
        exactly the float64 arithmetic of pdqhash's wrapper, in the same order, then
        rounded to float32 as it does, so the hash is the wrapper's bit for bit.
        """
        shape = pixels.shape[:2]
        size = shape[0] * shape[1]
        if self.flat.size < 2 * size:
            self.flat = np.empty(2 * size, np.float32)
        work = self.flat[:size].reshape(shape)
        if pixels.ndim == 2:
            np.copyto(work, pixels, casting="safe")
        else:
            if self.wide.size < 2 * size:
                self.wide = np.empty(2 * size, np.float64)
            total, term = self.wide[:size].reshape(shape), self.wide[size : 2 * size].reshape(shape)
            np.multiply(pixels[:, :, 0], 0.299, out=total)
            np.multiply(pixels[:, :, 1], 0.587, out=term)
            np.add(total, term, out=total)
            np.multiply(pixels[:, :, 2], 0.114, out=term)
            np.add(total, term, out=total)
            np.copyto(work, total, casting="same_kind")
        return work, self.flat[size : 2 * size].reshape(shape)


_ARENA = _Arena()


def hash_pixels(core: Core, pixels: npt.NDArray[np.uint8]) -> tuple[str, int]:
    """PDQ hash (hex) and quality of a 2-D luma frame or H x W x C pixels."""
    work, second = _ARENA.luma(pixels)
    words = np.zeros(_WORDS, np.uint16)
    quality = ctypes.c_int()
    core.hash(
        work.ctypes.data,
        second.ctypes.data,
        work.shape[0],
        work.shape[1],
        _ARENA.b64.ctypes.data,
        _ARENA.b16x64.ctypes.data,
        _ARENA.b16.ctypes.data,
        words.ctypes.data,
        ctypes.byref(quality),
    )
    return _hex(words), quality.value


def dihedral_pixels(core: Core, pixels: npt.NDArray[np.uint8]) -> tuple[list[str], int]:
    """The eight dihedral PDQ hashes, in pdqhash's order, and the quality."""
    work, second = _ARENA.luma(pixels)
    words = np.zeros((8, _WORDS), np.uint16)
    quality = ctypes.c_int()
    core.dihedral(
        work.ctypes.data,
        second.ctypes.data,
        work.shape[0],
        work.shape[1],
        _ARENA.b64.ctypes.data,
        _ARENA.b16x64.ctypes.data,
        _ARENA.b16.ctypes.data,
        _ARENA.aux.ctypes.data,
        *(words[index].ctypes.data for index in range(8)),
        ctypes.byref(quality),
    )
    return [_hex(words[index]) for index in range(8)], quality.value


def load() -> Core | None:
    """The C++ entry points inside pdqhash's extension, or None if this build lacks them.

    Callers must still check results against ``pdqhash.compute`` once (see ``pdq.py``).
    """
    try:
        return Core(ctypes.CDLL(pdqhash.bindings.__file__))
    except (OSError, AttributeError):
        return None
