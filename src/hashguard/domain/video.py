"""Video signals: vPDQ frame hashes and what was learnt of a video's container."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The reference's quality threshold (threatexchange ``VPDQ_QUALITY_THRESHOLD``): frames
#: of lower quality are recorded but never matched.
VPDQ_MIN_QUALITY = 50


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
