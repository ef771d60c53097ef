"""What reviewers see by default: a small, greyscale, strongly blurred derivative of the
content, made on the server so the original's bytes never reach the browser unasked.

Decoding goes through ``hashing.decode`` (the format allowlist, the pixel cap checked
from the header before any pixel is decoded, no truncated images, the decompression-bomb
guard), in its fast luma mode: colour is dropped and large images are reduced while
they decode. Content that may not or cannot be decoded gets a placeholder, never the
original. The result is a fresh PNG: no metadata of the original survives. A video's
frames get the same derivative (``review.contact``: the contact sheet).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter

from hashguard.domain.signals import PdqMode
from hashguard.hashing.decode import DecodeError, ImageFormat, UnsupportedFormat, decode, sniff

#: The derivative's longest side, in pixels.
MAX_SIDE = 256
#: The Gaussian blur's radius as a fraction of the derivative's longest side: about
#: 10 px at 256, which leaves the layout of light and dark and nothing recognisable.
BLUR_FRACTION = 1 / 24
PLACEHOLDER_SIZE = (MAX_SIDE, 192)

#: What an original is served as (only allowlisted image formats are served inline).
MEDIA_TYPES: dict[ImageFormat, str] = {
    ImageFormat.JPEG: "image/jpeg",
    ImageFormat.PNG: "image/png",
    ImageFormat.GIF: "image/gif",
    ImageFormat.WEBP: "image/webp",
    ImageFormat.BMP: "image/bmp",
    ImageFormat.TIFF: "image/tiff",
    ImageFormat.HEIF: "image/heif",
    ImageFormat.AVIF: "image/avif",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Derivative:
    png: bytes
    #: ``None`` for a blurred derivative, else why the content got a placeholder
    placeholder: str | None = None


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def placeholder(reason: str) -> Derivative:
    """A grey, striped image that shows nothing of the content."""
    image = Image.new("L", PLACEHOLDER_SIZE, 200)
    draw = ImageDraw.Draw(image)
    width, height = PLACEHOLDER_SIZE
    for x in range(-height, width, 24):
        draw.line([(x, height), (x + height, 0)], fill=170, width=6)
    return Derivative(png=_png(image), placeholder=reason)


def blurred(luma: npt.NDArray[np.uint8]) -> Image.Image:
    """Reduce a 2-D luma array to at most ``MAX_SIDE`` and blur it strongly."""
    image = Image.fromarray(np.ascontiguousarray(luma, dtype=np.uint8))
    if image.mode != "L":
        image = image.convert("L")
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    radius = max(2.0, max(image.size) * BLUR_FRACTION)
    return image.filter(ImageFilter.GaussianBlur(radius))


def derivative_of(luma: npt.NDArray[np.uint8]) -> Derivative:
    """The blurred greyscale derivative of decoded luma (an image's, a video frame's)."""
    return Derivative(png=_png(blurred(luma)))


def preview(data: bytes, *, max_pixels: int) -> Derivative:
    """The derivative of ``data``; a placeholder when it is not a decodable image
    (outside the allowlist, over ``max_pixels``, truncated, corrupt)."""
    try:
        decoded = decode(data, max_pixels=max_pixels, max_frames=1, mode=PdqMode.FAST)
    except UnsupportedFormat:
        return placeholder("not an image format that is previewed")
    except DecodeError as exc:
        return placeholder(f"the image could not be decoded ({str(exc)[:200]})")
    frame = decoded.frames[0]
    if frame.ndim == 3:  # fast mode gives luma; keep this safe whatever it gives
        frame = np.asarray(Image.fromarray(frame).convert("L"))
    return derivative_of(frame)


def media_type(data: bytes) -> str | None:
    """The image media type of ``data`` by its signature; ``None`` outside the allowlist."""
    found = sniff(data[:16])
    return MEDIA_TYPES[found] if found is not None else None
