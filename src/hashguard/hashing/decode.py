"""Safe decoding of untrusted image bytes: a format allowlist, a pixel cap, no truncated images.

This module decides *whether* pixels may be produced, and produces them for PDQ along
one of two paths. ``reference``: exactly the pixels threatexchange's ``PdqSignal`` feeds
``pdqhash``, so hashes are bit-identical to HMA's. ``fast``: luma only, decoded at
reduced size by JPEG's DCT scaling, with the short side kept at ``FAST_MIN_SIDE`` or
more; ``hashguard.hashing.pdqgrid`` then takes it to PDQ's 64 x 64 grid.

Asking for ``fast`` gets the fast path only where it pays and holds: a JPEG the decoder
itself scales (``fast_applies``; the kernel also recomputes on the reference path a
fast hash of quality below 100). Every other file (a smaller JPEG, any PNG, GIF, WebP,
...) takes the reference path, and ``Decoded.mode`` says so, so that its hash is
labelled ``reference``. On real images the fast path's preprocessing drifted up to
130 bits on smooth artwork (a 504 x 502 radial glow, plain fields) and 60 bits on
icons, losing matches the reference finds, while it saved at most a few ms per file
below the DCT-scaling size (see the README, "Hashes, PDQ modes and compatibility").
It holds no process isolation: callers
run it in worker processes with memory and time limits (``hashguard.hashing.isolate``).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import pillow_heif
from PIL import Image, ImageFile

from hashguard.domain.signals import PdqMode

pillow_heif.register_heif_opener()


class ImageFormat(StrEnum):
    JPEG = "jpeg"
    PNG = "png"
    GIF = "gif"
    WEBP = "webp"
    BMP = "bmp"
    TIFF = "tiff"
    HEIF = "heif"
    AVIF = "avif"


#: The Pillow plugins each sniffed format may be opened with; nothing else is ever tried.
_PILLOW_PLUGINS: dict[ImageFormat, tuple[str, ...]] = {
    ImageFormat.JPEG: ("JPEG", "MPO"),
    ImageFormat.PNG: ("PNG",),
    ImageFormat.GIF: ("GIF",),
    ImageFormat.WEBP: ("WEBP",),
    ImageFormat.BMP: ("BMP",),
    ImageFormat.TIFF: ("TIFF",),
    ImageFormat.HEIF: ("HEIF",),
    ImageFormat.AVIF: ("AVIF", "HEIF"),
}

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}

#: Enough leading bytes for every signature in ``sniff`` and ``video.sniff_video`` (an
#: MPEG-TS file is known by its second packet's sync byte, at 188).
SNIFF_BYTES = 192

#: Modes threatexchange hands to pdqhash as they are (L is stacked to three channels).
_AS_IS_MODES = {"RGB", "RGBA", "L"}

#: The fast mode keeps the short side at least this long before ``pdqgrid`` samples it
#: down to 64 x 64. With a short side of 256, noise-like textures at 1080p drift to 30
#: bits from the reference hash; at 384 (JPEG DCT scale 1/4 for 12 MP, 1/2 for 1 MP and
#: 1080p) they stay at 18 or less on every size the benchmark checks.
FAST_MIN_SIDE = 384
#: The fast path is taken only for JPEGs whose short side is at least this long: the
#: DCT scale is then 1/2 or less, which is where its speed comes from.
FAST_FROM_SIDE = 2 * FAST_MIN_SIDE


class DecodeError(Exception):
    """The file claims an allowed image format but may not or cannot be decoded."""


class UnsupportedFormat(Exception):
    """The file is not in the image-format allowlist (it may still match exact-hash lists)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Decoded:
    image_format: ImageFormat
    width: int
    height: int
    frames: tuple[npt.NDArray[np.uint8], ...]
    #: Each frame's size (width, height) as stored, before any reduction.
    sizes: tuple[tuple[int, int], ...]
    #: The path the frames were prepared for: ``fast`` (reduced luma, for ``pdqgrid``)
    #: or ``reference`` (threatexchange's pixels), whatever mode was asked for.
    mode: PdqMode


def sniff(head: bytes) -> ImageFormat | None:
    """Name the allowed format ``head`` (the file's first bytes) starts with, if any."""
    if head.startswith(b"\xff\xd8\xff"):
        return ImageFormat.JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ImageFormat.PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ImageFormat.GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ImageFormat.WEBP
    if head[:2] == b"BM":
        return ImageFormat.BMP
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return ImageFormat.TIFF
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _AVIF_BRANDS:
            return ImageFormat.AVIF
        if brand in _HEIF_BRANDS:
            return ImageFormat.HEIF
    return None


def fast_applies(image_format: ImageFormat, width: int, height: int) -> bool:
    """Whether a file asked to be hashed in ``fast`` mode takes the fast path: only a
    JPEG that its decoder scales down by 2 or more (DCT scaling)."""
    return image_format is ImageFormat.JPEG and min(width, height) >= FAST_FROM_SIDE


def decode(
    data: bytes, *, max_pixels: int, max_frames: int = 1, mode: PdqMode = PdqMode.REFERENCE
) -> Decoded:
    """Decode up to ``max_frames`` frames of an allowed image into PDQ-ready arrays:
    H x W x C uint8 on the reference path, 2-D uint8 luma on the fast path. ``mode``
    ``fast`` asks for the fast path; ``Decoded.mode`` says which one was taken.

    Raises ``UnsupportedFormat`` for anything outside the allowlist and ``DecodeError``
    for an allowed format that is truncated, corrupt, or declares more than
    ``max_pixels`` pixels (checked from the header, before any pixel is decoded).
    """
    image_format = sniff(data[:SNIFF_BYTES])
    if image_format is None:
        raise UnsupportedFormat("not an image format on the allowlist")
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False")
    try:
        with warnings.catch_warnings():
            # Our own cap, checked below, is far stricter than Pillow's warning level.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # A palette image's transparency is dropped on purpose (PDQ ignores alpha).
            warnings.filterwarnings(
                "ignore", "Palette images with Transparency", UserWarning, "PIL.Image"
            )
            with Image.open(io.BytesIO(data), formats=_PILLOW_PLUGINS[image_format]) as image:
                width, height = image.size
                _check_size(width, height, max_pixels)
                fast = mode is PdqMode.FAST and fast_applies(image_format, width, height)
                pixels = _fast_luma if fast else pdq_input
                if fast:
                    # DCT-domain scaling: the decoder itself produces fewer pixels.
                    image.draft("L", (FAST_MIN_SIDE, FAST_MIN_SIDE))
                frames = [pixels(image)]
                sizes = [(width, height)]
                for index in range(1, max_frames):
                    try:
                        image.seek(index)
                    except EOFError:
                        break
                    _check_size(*image.size, max_pixels)
                    sizes.append(image.size)
                    frames.append(pixels(image))
    except DecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"decompression bomb refused: {exc}") from exc
    except MemoryError as exc:
        raise DecodeError("decoding exceeded the worker's memory limit") from exc
    except Exception as exc:
        raise DecodeError(
            f"{image_format} could not be decoded: {type(exc).__name__}: {exc}"
        ) from exc
    return Decoded(
        image_format=image_format,
        width=width,
        height=height,
        frames=tuple(frames),
        sizes=tuple(sizes),
        mode=PdqMode.FAST if fast else PdqMode.REFERENCE,
    )


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise DecodeError(f"image declares an empty size {width}x{height}")
    if width * height > max_pixels:
        raise DecodeError(
            f"image declares {width}x{height} = {width * height / 1e6:.1f} MP, "
            f"over the {max_pixels / 1e6:g} MP cap"
        )


def _fast_luma(image: Image.Image) -> npt.NDArray[np.uint8]:
    """Luma (ITU-R 601, PDQ's own weights) of a frame DCT-scaled by ``draft``, with the short
    side reduced further toward FAST_MIN_SIDE by an integer box factor when the DCT's
    1/8 was not enough (very long sides)."""
    grey = image if image.mode == "L" else image.convert("L")
    factor = min(grey.size) // FAST_MIN_SIDE
    if factor >= 2:
        grey = grey.reduce(factor)
    return np.asarray(grey)


def pdq_input(image: Image.Image) -> npt.NDArray[np.uint8]:
    """The array threatexchange's ``pdq_hasher`` would give pdqhash for this frame.

    RGB, RGBA and L frames, and LA and I;16 (which threatexchange converts to RGB),
    are handled exactly as threatexchange does. Every other mode is converted to RGB
    first. That is a deliberate difference: threatexchange hands palette (P) images'
    palette *indices* and CMYK's C, M, Y planes to pdqhash as if they were colours,
    which makes a GIF's hash depend on its palette order rather than its picture.
    """
    if image.mode not in _AS_IS_MODES:
        image = image.convert("RGB")
    array: npt.NDArray[np.uint8] = np.asarray(image)
    if array.ndim == 2:
        array = np.concatenate([array[..., np.newaxis]] * 3, axis=2)
    return array
