"""Video signals: vPDQ frame hashes and what was learnt of a video's container."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The reference's quality threshold (threatexchange ``VPDQ_QUALITY_THRESHOLD``): frames
#: of lower quality are recorded but never matched.
VPDQ_MIN_QUALITY = 50

_PDQ_HEX = 64
_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True, kw_only=True, slots=True)
class VpdqFrame:
    """One sampled frame's vPDQ feature, as ``vpdq.computeHash`` returns it: the frame's
    PDQ hash (64 hex), its quality, its frame number and its timestamp in seconds."""

    value: str
    quality: int
    frame: int
    timestamp: float

    @property
    def low_quality(self) -> bool:
        return self.quality < VPDQ_MIN_QUALITY


@dataclass(frozen=True, kw_only=True, slots=True)
class VideoInfo:
    """What the probe read from the container: its format, the video stream's codec,
    duration in seconds, declared frame count (0 when unknown) and frame rate."""

    container: str
    codec: str
    duration: float
    frames: int
    fps: float


def vpdq_to_json(frame: VpdqFrame) -> dict[str, Any]:
    return {
        "value": frame.value,
        "quality": frame.quality,
        "frame": frame.frame,
        "timestamp": frame.timestamp,
    }


def vpdq_from_json(data: Mapping[str, Any]) -> VpdqFrame:
    return VpdqFrame(
        value=data["value"],
        quality=int(data["quality"]),
        frame=int(data["frame"]),
        timestamp=float(data["timestamp"]),
    )


def video_to_json(info: VideoInfo) -> dict[str, Any]:
    return {
        "container": info.container,
        "codec": info.codec,
        "duration": info.duration,
        "frames": info.frames,
        "fps": info.fps,
    }


def video_from_json(data: Mapping[str, Any]) -> VideoInfo:
    return VideoInfo(
        container=data["container"],
        codec=data["codec"],
        duration=float(data["duration"]),
        frames=int(data["frames"]),
        fps=float(data["fps"]),
    )


def vpdq_feature_str(frame: VpdqFrame) -> str:
    """One frame as python-threatexchange's ``VpdqCompactFeature`` writes it:
    ``hex,quality,timestamp`` (the timestamp with millisecond precision)."""
    return f"{frame.value},{frame.quality},{frame.timestamp:.3f}"


def vpdq_signal(frames: Sequence[VpdqFrame]) -> str:
    """A video's frames as python-threatexchange's ``vpdq`` signal string: a JSON list
    of ``vpdq_feature_str`` strings (its ``vpdq_to_json``)."""
    return json.dumps([vpdq_feature_str(f) for f in frames])


def vpdq_digest(frames: Sequence[VpdqFrame]) -> str:
    """A vPDQ bank entry's identity: the SHA-256 of its canonical ``vpdq_signal``
    (the frames themselves are kept beside it)."""
    return signal_digest(vpdq_signal(frames))


def signal_digest(signal: str) -> str:
    """``vpdq_digest`` of the frames a canonical ``vpdq_signal`` holds."""
    return hashlib.sha256(signal.encode()).hexdigest()


def frames_of_signal(signal: str) -> tuple[VpdqFrame, ...]:
    """The frames of a ``vpdq_signal`` string (``ValueError`` or ``TypeError`` if it is
    not one)."""
    items = json.loads(signal)
    if not isinstance(items, list):
        raise TypeError("a vpdq signal is a JSON list")
    return parse_vpdq_features(items)


def parse_vpdq_features(items: Sequence[Any]) -> tuple[VpdqFrame, ...]:
    """``hex,quality,timestamp`` strings (python-threatexchange's serialisation) as
    frames numbered in order; ``ValueError`` saying which item is malformed."""
    frames = []
    for number, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"vpdq feature {number + 1} is not a string")
        parts = item.split(",")
        if len(parts) != 3:
            raise ValueError(f"vpdq feature {number + 1} is not 'hash,quality,timestamp'")
        value, quality_text, time_text = (p.strip() for p in parts)
        value = value.lower()
        if len(value) != _PDQ_HEX or not _HEX.fullmatch(value):
            raise ValueError(f"vpdq feature {number + 1}: the hash is not 64 hex digits")
        try:
            quality, timestamp = int(quality_text), float(time_text)
        except ValueError:
            raise ValueError(f"vpdq feature {number + 1}: bad quality or timestamp") from None
        if not 0 <= quality <= 100 or not math.isfinite(timestamp) or timestamp < 0:
            raise ValueError(f"vpdq feature {number + 1}: quality or timestamp out of range")
        frames.append(VpdqFrame(value=value, quality=quality, frame=number, timestamp=timestamp))
    return tuple(frames)
