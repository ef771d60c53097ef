"""Benchmark video clips: slow pans and zooms over real Debian photos, 720p and 1080p (PyAV).

The photos are ``bench.realimages``' (MATE's nature backgrounds, 1280 x 1024 to 2560 x
1920). Each clip is 10 s at 30 fps, encoded with H.264 (libx264, ``veryfast``, CRF 23,
its default B-frames: what phones and sites serve) or MPEG-4 Part 2 (two B-frames).
Clips are cached in ``bench/out/corpus/video``; nothing here is timed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from bench.config import CACHE_DIR
from bench.realimages import discover
from hashguard.demo.clips import pan

SECONDS, FPS = 10, 30
RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080)}
#: codec name, PyAV encoder, encoder options
CODECS = {
    "h264": ("libx264", {"preset": "veryfast", "crf": "23"}),
    "mpeg4": ("mpeg4", {"bf": "2", "qscale": "4"}),
}
#: clips per resolution, by scale: (codec, ...) cycling over the photos
PLAN = {"small": ("h264", "h264", "mpeg4"), "full": ("h264",) * 4 + ("mpeg4",) * 2}


@dataclass(frozen=True, kw_only=True, slots=True)
class Clip:
    path: Path
    resolution: str
    codec: str
    photo: str


def photos() -> list[Path]:
    return [image.path for image in discover() if image.kind == "photo" and image.width >= 1600]


def build_clips(scale: str, progress: Any) -> list[Clip]:
    """The clips of ``scale`` (made once, then read from the cache)."""
    sources = photos()
    if not sources:
        return []
    folder = CACHE_DIR / "video"
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for resolution, (width, height) in RESOLUTIONS.items():
        for index, codec in enumerate(PLAN[scale]):
            photo = sources[index % len(sources)]
            path = folder / f"{resolution}-{index}-{codec}-{photo.stem}.mp4"
            if not path.exists():
                progress(f"video clips: making {path.name}")
                _write(path, photo, width, height, codec)
            clips.append(Clip(path=path, resolution=resolution, codec=codec, photo=photo.name))
    return clips


def _write(path: Path, photo: Path, width: int, height: int, codec: str) -> None:
    import av  # noqa: PLC0415 - the video extra

    with Image.open(photo) as opened:
        source = opened.convert("RGB")
    # panning over a copy a little larger than the frame keeps each frame's resize cheap
    scale = 1.3 * max(width / source.width, height / source.height)
    source = source.resize((round(source.width * scale), round(source.height * scale)))
    encoder, options = CODECS[codec]
    partial = path.with_suffix(".part.mp4")
    with av.open(str(partial), "w") as out:
        stream: Any = out.add_stream(encoder, rate=FPS, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in pan(source, seconds=SECONDS, fps=FPS, width=width, height=height):
            for packet in stream.encode(av.VideoFrame.from_image(image)):  # type: ignore[no-untyped-call]
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    partial.rename(path)
