"""The decode floor: per file, read + MD5 + Pillow's luma-only JPEG decode, and nothing else.

It bounds what any scanner built on Pillow can reach per core: the bytes must be read and
exact-hashed, and the JPEG's entropy-coded data must be decoded whatever is done next.
Measured in this process on the page-cached corpus, one file after the other, two ways:

- (a) ``full``: luma at full size (``draft("L", size)``), the decode PDQ's reference needs;
  the fast path is judged against this one.
- (b) ``dct``: luma with the DCT scaling the fast path itself asks for
  (``draft("L", (FAST_MIN_SIDE, FAST_MIN_SIDE))``): the floor of the fast path's decode,
  for information. DCT scaling skips the inverse transform of most coefficients but not
  the Huffman decode, so at 1 MP the two floors are close.
"""

from __future__ import annotations

import hashlib
import io
from enum import StrEnum
from pathlib import Path

from PIL import Image

from bench.cli import BenchError
from bench.timing import timed
from hashguard.hashing.decode import FAST_MIN_SIDE


class Floor(StrEnum):
    FULL = "full"
    DCT = "dct"


#: How the table names each floor: its letter, then what is decoded.
NAMES = {Floor.FULL: "(a)", Floor.DCT: "(b)"}
DESCRIPTIONS = {
    Floor.FULL: "luma at full size",
    Floor.DCT: f"luma DCT-scaled as the fast path (draft {FAST_MIN_SIDE})",
}


def _decode_luma(data: bytes, floor: Floor) -> None:
    with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
        size = image.size if floor is Floor.FULL else (FAST_MIN_SIDE, FAST_MIN_SIDE)
        image.draft("L", size)
        image.load()
        if image.mode != "L":
            raise BenchError(f"decode floor: Pillow decoded {image.mode}, not luma only")


def decode_floor(files: tuple[Path, ...], floor: Floor) -> float:
    """Seconds to read, MD5 and luma-decode every file once."""

    def work() -> None:
        for path in files:
            data = path.read_bytes()
            hashlib.md5(data).hexdigest()
            _decode_luma(data, floor)

    return timed(work)
