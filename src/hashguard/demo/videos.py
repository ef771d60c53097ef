"""The demo's video part beside ``run.clip_showing``'s clip (a known image shown for three
seconds): a re-encoded copy of a listed clip, an unrelated clip, and the demo's video
list (vPDQ entries)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from PIL import Image

from hashguard.banks.importer import ImportOptions, NewBank, import_list
from hashguard.demo.clips import pan, write_clip
from hashguard.demo.corpus import photo_like
from hashguard.domain.banks import ImportReport
from hashguard.domain.matches import Match
from hashguard.domain.policy import BankPolicy
from hashguard.domain.video import vpdq_signal
from hashguard.hashing.video import VideoLimits, extra_missing, hash_video
from hashguard.store import Store

#: the demo's video list: vPDQ entries, the demo bank's policy (matches go to review)
VIDEO_BANK = "demo-videos"
FPS = 5  # vPDQ samples one frame a second: a low rate keeps the demo fast
WIDTH, HEIGHT = 320, 240
#: where ``run.clip_showing`` holds the known image (after a 2 s pan, for 3 s)
KNOWN_BETWEEN = (2.0, 5.0)


class VideoFinding(StrEnum):
    """How a demo clip must be found (or that it must not be)."""

    FRAME = "frame"  # a frame is a known image (PDQ bank), with its timestamp
    VPDQ = "vpdq"  # the clip is a copy of a listed video (vPDQ bank)
    NONE = "none"


#: upload name -> how it must be found
CLIPS = {
    "video-known-clip-reencoded.mkv": VideoFinding.VPDQ,
    "video-other.mp4": VideoFinding.NONE,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class VideoLayout:
    video_list: Path
    #: upload name -> how it must be found
    expected: dict[str, VideoFinding]
    #: where the known image is in its clip, in seconds (start, end)
    known_between: tuple[float, float]


def missing() -> str | None:
    """Why the demo has no video part here (the video extra is not installed), or None."""
    return extra_missing()


def build_videos(uploads: Path, lists: Path, *, frame_clip: str) -> VideoLayout:
    """Short, small clips (PyAV, mpeg4): fast to make and to scan; ``frame_clip`` names
    the upload that shows a known image (``run.clip_showing``)."""

    def panned(seed: int, seconds: float) -> list[Image.Image]:
        return list(
            pan(photo_like(seed, 800, 600), seconds=seconds, fps=FPS, width=WIDTH, height=HEIGHT)
        )

    # the listed clip: kept only as its vPDQ in the list; the upload is a re-encoded copy
    # (another container and codec, smaller)
    listed = panned(7200, 6)
    original = write_clip(lists / "listed-clip.mp4", listed, fps=FPS)
    _, frames = hash_video(original.read_bytes(), VideoLimits())
    original.unlink()
    write_clip(
        uploads / "video-known-clip-reencoded.mkv",
        [f.resize((240, 180)) for f in listed],
        fps=FPS,
        codec="mpeg2video",
    )
    write_clip(uploads / "video-other.mp4", panned(7300, 4), fps=FPS)
    video_list = lists / "videos.csv"
    with video_list.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["algorithm", "hash", "entry_id", "category"])
        writer.writerow(["vpdq", vpdq_signal(frames), "demo-video-000", "demo"])
    return VideoLayout(
        video_list=video_list,
        expected={frame_clip: VideoFinding.FRAME, **CLIPS},
        known_between=KNOWN_BETWEEN,
    )


def import_video_bank(store: Store, layout: VideoLayout, policy: BankPolicy) -> ImportReport:
    report = import_list(
        store.banks,
        VIDEO_BANK,
        layout.video_list,
        options=ImportOptions(
            source="hashguard demo (generated clips)", licence="test only", create=NewBank()
        ),
    )
    store.banks.configure(
        VIDEO_BANK,
        exact_action=policy.exact_action,
        auto_max_distance=policy.auto_max_distance,
        review_max_distance=policy.review_max_distance,
    )
    return report


def how_found(matches: tuple[Match, ...]) -> VideoFinding:
    """How a clip was found: by vPDQ, else by a frame, else not at all."""
    effective = [m for m in matches if m.effective]
    if any(m.query_percent is not None for m in effective):
        return VideoFinding.VPDQ
    if any(m.timestamp is not None for m in effective):
        return VideoFinding.FRAME
    return VideoFinding.NONE


def described(match: Match) -> str:
    """A video match in words: vPDQ percentages and times, or the matching frame's time."""
    if match.query_percent is not None:
        return (
            f"vpdq {match.query_percent:.0f}% of its frames, {match.compared_percent or 0:.0f}% "
            f"of the listed clip's; frames at {', '.join(f'{t:g}' for t in match.timestamps)} s"
        )
    return f"{match.algorithm} d={match.distance}: frame at {match.timestamp:g} s"
