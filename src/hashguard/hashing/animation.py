"""Animated GIF and WebP of many frames, hashed like a video: frames sampled by display time.

An animation of ``HashOptions.animation_frames`` frames or fewer stays an image (its
first frame, or ``max_frames``, as ``decode`` gives them). One of more frames is a
video in all but container: its frames are composited in order by Pillow (the image
decoder of the allowlist, so the first frame's hash is the image path's), the frame on
screen at every ``seconds_per_hash`` (one a second) of its display time is PDQ-hashed
on the reference path, once per frame, with the time it is first shown, and each is
matched against the PDQ image banks like a video's frames (``Matcher``).

No vPDQ is computed for them. Meta's ``vpdq`` reads through FFmpeg, and Debian 12's
FFmpeg 5.1 cannot decode animated WebP at all ("Width or height equals 0"); for a GIF
it samples by frame count at the average frame rate, so with the uneven frame
durations GIFs have, its sampled frames are not those shown each second and its
timestamps are wrong (measured: a frame shown at 0.2 s is stamped 0.69 s). A vPDQ of
our own sampling would not be the reference's, and only reference hashes leave.

Caps, checked from the headers before a frame is decoded (a decompression bomb costs
nothing): the canvas within the scan's pixel cap, at most ``MAX_FRAMES`` frames, and
at most ``MAX_DECODED_PIXELS`` pixels decoded in all (frames x canvas), which keeps an
animation within the image time limit of its worker.
"""

from __future__ import annotations

import dataclasses
import io
import math
import warnings
from typing import TYPE_CHECKING

from PIL import Image

from hashguard.domain.signals import FileSignals, PdqHash, PdqMode
from hashguard.domain.video import VideoInfo
from hashguard.hashing.decode import (
    SNIFF_BYTES,
    DecodeError,
    ImageFormat,
    UnsupportedFormat,
    pdq_input,
    sniff,
)
from hashguard.hashing.pdq import pdq_hash

if TYPE_CHECKING:
    from hashguard.hashing.kernel import HashOptions

#: an animation of more frames than this is hashed like a video (``Settings.animation_frames``)
ANIMATION_FRAMES = 10
#: display time between sampled frames (vPDQ's default: one frame a second)
SECONDS_PER_HASH = 1.0
#: frames of an animation decoded at most
MAX_FRAMES = 10_000
#: pixels decoded at most over all frames (frames x canvas): 1 Gpx, seconds of work
MAX_DECODED_PIXELS = 1_000_000_000
#: browsers show a GIF or WebP frame of 10 ms or less for 100 ms; so is it timed here
SHORTEST_MS, SHOWN_MS = 10, 100

_PLUGINS = {ImageFormat.GIF: ("GIF",), ImageFormat.WEBP: ("WEBP",)}


def frame_count(data: bytes) -> int:
    """Frames of an animated GIF or WebP (read without decoding any); 1 for anything
    else. Raises ``DecodeError`` when the file cannot be opened."""
    image_format = sniff(data[:SNIFF_BYTES])
    if image_format not in _PLUGINS:
        return 1
    with _opened(data, image_format) as image:
        return int(getattr(image, "n_frames", 1))


def is_video_like(data: bytes, options: HashOptions) -> bool:
    """Whether ``data`` is an animation to hash like a video (more frames than
    ``options.animation_frames``). A file that cannot be opened is not: the image path
    gives it its outcome and reason."""
    try:
        return frame_count(data) > options.animation_frames
    except DecodeError:
        return False


def _opened(data: bytes, image_format: ImageFormat) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=_PLUGINS[image_format])
    except Exception as exc:
        raise DecodeError(
            f"{image_format} could not be opened: {type(exc).__name__}: {exc}"
        ) from exc


def add_frames(data: bytes, signals: FileSignals, options: HashOptions) -> FileSignals:
    """``signals`` with the PDQ hashes (reference path, with timestamps) of the frames
    of the animation ``data`` shown at each sampled second, its format, canvas size and
    ``video`` (container and codec ``gif`` or ``webp``, duration, frames, frame rate).
    Raises ``DecodeError`` for a broken file or one over a cap."""
    image_format = sniff(data[:SNIFF_BYTES])
    if image_format not in _PLUGINS:
        raise UnsupportedFormat("not an animated GIF or WebP")
    step = SECONDS_PER_HASH
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings(
                "ignore", "Palette images with Transparency", UserWarning, "PIL.Image"
            )
            with _opened(data, image_format) as image:
                width, height = image.size
                count = int(getattr(image, "n_frames", 1))
                _check_caps(width, height, count, options.max_pixels)
                hashes: list[PdqHash] = []
                start = 0.0
                for index in range(count):
                    image.seek(index)
                    image.load()
                    _check_canvas(image, index, width, height)
                    duration = _seconds(image.info.get("duration"))
                    # shown over [start, start + duration): sampled if a multiple of the
                    # step falls in it (a frame shown for several steps is hashed once)
                    if index == 0 or math.ceil(start / step) * step < start + duration:
                        frame = pdq_hash(pdq_input(image), frame=index, mode=PdqMode.REFERENCE)
                        hashes.append(dataclasses.replace(frame, timestamp=round(start, 3)))
                    start += duration
    except (DecodeError, UnsupportedFormat):
        raise
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"decompression bomb refused: {exc}") from exc
    except MemoryError as exc:
        raise DecodeError("decoding exceeded the worker's memory limit") from exc
    except Exception as exc:
        raise DecodeError(
            f"{image_format} could not be decoded: {type(exc).__name__}: {exc}"
        ) from exc
    info = VideoInfo(
        container=str(image_format),
        codec=str(image_format),
        duration=round(start, 3),
        frames=count,
        fps=round(count / start, 3) if start else 0.0,
    )
    return dataclasses.replace(
        signals,
        pdq=tuple(hashes),
        image_format=str(image_format),
        width=width,
        height=height,
        video=info,
    )


def _check_caps(width: int, height: int, count: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise DecodeError(f"animation declares an empty size {width}x{height}")
    if width * height > max_pixels:
        raise DecodeError(
            f"animation declares {width}x{height} = {width * height / 1e6:.1f} MP, "
            f"over the {max_pixels / 1e6:g} MP cap"
        )
    if count > MAX_FRAMES:
        raise DecodeError(f"animation of {count} frames, over the cap of {MAX_FRAMES}")
    if count * width * height > MAX_DECODED_PIXELS:
        raise DecodeError(
            f"decompression bomb refused: {count} frames of {width}x{height} would decode "
            f"{count * width * height / 1e6:.0f} MP, over the cap of "
            f"{MAX_DECODED_PIXELS / 1e6:.0f} MP"
        )


def _check_canvas(image: Image.Image, index: int, width: int, height: int) -> None:
    if image.size != (width, height):
        raise DecodeError(f"frame {index} changes the canvas to {image.size}")


def _seconds(milliseconds: object) -> float:
    """A frame's display time, as browsers time it."""
    ms = float(milliseconds) if isinstance(milliseconds, int | float) else 0.0
    return (SHOWN_MS if ms <= SHORTEST_MS else ms) / 1000
