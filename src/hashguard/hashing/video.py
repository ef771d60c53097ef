"""Safe video hashing: a container/codec allowlist and caps checked by PyAV, then Meta's vPDQ.

Two libraries, each for what it is best at. PyAV (FFmpeg in its wheel) *probes*: the
container is opened with the one demuxer its signature names (FFmpeg never guesses
among others), only the headers are read, and the streams, codec, size, duration and
declared frame count are checked against ``VideoLimits`` before a frame is decoded.
Only then does ``vpdq.computeHash`` (Meta's reference, built against the system FFmpeg)
decode and hash the sampled frames, so hashes are the reference's by construction
(measured: decoding the same frames with PyAV and hashing them with ``pdqhash`` gives
the same hashes in about the same time, 0.18 s against 0.16 s for 10 s of 640x480
mpeg4, so a second decoder path would buy nothing).

Runs in the isolated hashing workers (``hashguard.hashing.isolate``): their memory
and wall-time limits bound a decoder that hangs or crashes on a hostile stream, and
that costs the one file.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hashguard.domain.video import VideoInfo, VpdqFrame
from hashguard.hashing.decode import DecodeError, UnsupportedFormat


class VideoContainer(StrEnum):
    MP4 = "mp4"
    MATROSKA = "matroska"
    AVI = "avi"
    MPEGTS = "mpegts"


#: The FFmpeg demuxer each allowed container is opened with; no other is ever tried.
_DEMUXERS = {
    VideoContainer.MP4: "mov",
    VideoContainer.MATROSKA: "matroska",
    VideoContainer.AVI: "avi",
    VideoContainer.MPEGTS: "mpegts",
}

#: Video codecs decoded; anything else in an allowed container is ``unsupported``.
ALLOWED_CODECS = frozenset(
    {
        "h264",
        "hevc",
        "mpeg4",
        "mpeg2video",
        "mpeg1video",
        "vp8",
        "vp9",
        "av1",
        "mjpeg",
        "h263",
        "theora",
        "msmpeg4v3",
    }
)

#: ISO BMFF brands of still images (HEIF/AVIF): images, not video.
_IMAGE_BRANDS = {
    b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"
}  # fmt: skip

_TS_PACKET = 188


def sniff_video(head: bytes) -> VideoContainer | None:
    """The allowed container ``head`` (a file's first bytes) starts with, if any."""
    if head[4:8] == b"ftyp" and head[8:12] not in _IMAGE_BRANDS:
        return VideoContainer.MP4
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free"):  # QuickTime without ftyp
        return VideoContainer.MP4
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return VideoContainer.MATROSKA
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return VideoContainer.AVI
    if (
        head[:1] == b"\x47"
        and len(head) > _TS_PACKET
        and head[_TS_PACKET : _TS_PACKET + 1] == b"\x47"
    ):
        return VideoContainer.MPEGTS
    return None


#: 4K UHD: the largest frame decoded (a scan's image pixel cap applies when lower)
MAX_VIDEO_PIXELS = 3840 * 2160


@dataclass(frozen=True, kw_only=True, slots=True)
class VideoLimits:
    """Caps checked from the headers before any frame is decoded."""

    max_seconds: float = 3 * 3600.0
    max_pixels: int = MAX_VIDEO_PIXELS
    max_side: int = 8192
    max_frames: int = 3 * 3600 * 60
    max_streams: int = 16
    #: seconds between sampled frames (the reference's default: one frame a second)
    seconds_per_hash: float = 1.0


def probe(path: str, container: VideoContainer, limits: VideoLimits) -> VideoInfo:
    """Open ``path`` with ``container``'s demuxer and check it against ``limits``.

    Raises ``DecodeError`` for a container that cannot be opened (truncated, garbage) or
    breaks a cap, ``UnsupportedFormat`` for a video codec outside ``ALLOWED_CODECS`` or
    a file with no video stream.
    """
    import av  # noqa: PLC0415 - the video extra is optional

    try:
        with av.open(path, format=_DEMUXERS[container], metadata_errors="ignore") as opened:
            return _checked(opened, container, limits)
    except (DecodeError, UnsupportedFormat):
        raise
    except av.FFmpegError as exc:
        raise DecodeError(f"{container} could not be opened: {exc}") from exc


def _checked(opened: Any, container: VideoContainer, limits: VideoLimits) -> VideoInfo:
    streams = opened.streams
    if len(streams) > limits.max_streams:
        raise DecodeError(f"{len(streams)} streams, over the cap of {limits.max_streams}")
    if not streams.video:
        raise UnsupportedFormat(f"{container} file without a video stream")
    stream = streams.video[0]
    codec = stream.codec_context.name
    if codec not in ALLOWED_CODECS:
        raise UnsupportedFormat(f"video codec {codec!r} is not on the allowlist")
    width, height = stream.codec_context.width, stream.codec_context.height
    if width <= 0 or height <= 0:
        raise DecodeError(f"video declares an empty size {width}x{height}")
    if max(width, height) > limits.max_side or width * height > limits.max_pixels:
        raise DecodeError(
            f"video declares {width}x{height}, over the cap of {limits.max_pixels / 1e6:g} MP "
            f"or {limits.max_side} px a side"
        )
    duration = _seconds(opened, stream)
    if duration > limits.max_seconds:
        raise DecodeError(f"video lasts {duration:.0f} s, over the cap of {limits.max_seconds:g} s")
    fps = float(stream.average_rate or stream.guessed_rate or 0)
    frames = int(stream.frames or 0) or round(duration * fps)
    if frames > limits.max_frames:
        raise DecodeError(f"video declares {frames} frames, over the cap of {limits.max_frames}")
    return VideoInfo(
        container=str(container), codec=codec, duration=duration, frames=frames, fps=fps
    )


def _seconds(opened: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if opened.duration is not None:
        return float(opened.duration) / 1_000_000  # AV_TIME_BASE
    return 0.0


def vpdq_frames(path: str, seconds_per_hash: float) -> tuple[VpdqFrame, ...]:
    """The reference's vPDQ features of the video at ``path``, one thread (the worker
    is one of several, under a memory cap)."""
    import vpdq  # noqa: PLC0415 - the video extra is optional

    features = vpdq.computeHash(path, seconds_per_hash=seconds_per_hash, thread_count=1)
    return tuple(
        VpdqFrame(
            value=str(f.hex),
            quality=int(f.quality),
            frame=int(f.frame_number),
            timestamp=float(f.timestamp),
        )
        for f in features
    )


def hash_video(data: bytes, limits: VideoLimits) -> tuple[VideoInfo, tuple[VpdqFrame, ...]]:
    """Probe and vPDQ-hash a video held in memory (written to a private temporary file:
    both libraries read files). Raises ``UnsupportedFormat`` or ``DecodeError``."""
    container = sniff_video(data[: _TS_PACKET + 1])
    if container is None:
        raise UnsupportedFormat("not a video container on the allowlist")
    missing = extra_missing()
    if missing:
        raise UnsupportedFormat(missing)
    fd, path = tempfile.mkstemp(prefix="hashguard-video-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        info = probe(path, container, limits)
        frames = vpdq_frames(path, limits.seconds_per_hash)
    finally:
        os.unlink(path)
    if not frames:
        raise DecodeError(f"{container} ({info.codec}) yielded no decodable frame")
    return info, frames


def extra_missing() -> str | None:
    """Why videos cannot be hashed here (the ``video`` extra is not installed), or None."""
    try:
        import av  # noqa: F401, PLC0415
        import vpdq  # noqa: F401, PLC0415
    except ImportError as exc:
        return f"the video extra is not installed ({exc.name}): pip install 'hashguard[video]'"
    return None


def demuxer(container: VideoContainer) -> str:
    """The FFmpeg demuxer ``container`` is opened with (for the review's contact sheet,
    which decodes frames itself after ``probe``)."""
    return _DEMUXERS[container]
