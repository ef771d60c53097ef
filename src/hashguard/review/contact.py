"""The contact sheet of a video case: sampled frames as blurred greyscale derivatives.

A kept video is never played to a reviewer: no ``<video>`` element, no sound, nothing
that starts by itself. The case page shows a sheet of still frames instead, chosen as
``SheetPlan`` says (one every ``every`` seconds up to ``max_frames``, spread evenly
over a longer video, plus the frame of every match's timestamp), each made into the
image derivative (``review.derivatives``: greyscale, at most 256 px, strongly blurred).

``make_sheet`` and ``reveal_frame`` run in the isolated hashing workers
(``HashingPool.call``): the same memory and wall-time limits as scanning, after the
same probe and caps (``hashing.video.probe``: container allowlist, codec allowlist,
size, duration, frames, streams). The video reaches the decoder through an anonymous
in-memory file (``memfd``), never a file on disk; only derivatives leave the worker
(and, for ``reveal_frame``, the one revealed frame). Anything that cannot be shown
gets a typed outcome (``unsupported``, ``undecodable``, ``error``) and a placeholder:
never a crash, never the original.

``SheetCache`` keeps a few finished sheets (derivatives only) in the server's memory,
so the page and its frame images decode the video once.
"""

from __future__ import annotations

import io
import math
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hashguard.domain.matches import Match
from hashguard.domain.scans import Outcome
from hashguard.domain.signals import FileSignals
from hashguard.domain.video import VideoInfo
from hashguard.hashing import video
from hashguard.hashing.decode import DecodeError, UnsupportedFormat
from hashguard.review.derivatives import derivative_of

#: a frame's longest side after swscale reduced it, before the derivative is made
SHEET_SIDE = 512
#: a revealed frame's longest side (a larger frame is reduced to this)
REVEAL_SIDE = 1920
#: wanted frames further apart than this are reached by seeking, not decoding through
SEEK_GAP = 8.0
#: frames wanted this far (seconds) past the last one decoded: the video was cut short
CUT_SHORT = 1.0
#: the bytes ``hashing.video.sniff_video`` needs to name a container
SNIFF_BYTES = 189
#: matched frames shown at most (one per matched entry: a handful in practice)
MAX_MATCHED = 64


def is_video(signals: FileSignals | None) -> bool:
    """Whether a case's content was hashed as a video (its review is a contact sheet)."""
    return signals is not None and (signals.video is not None or bool(signals.vpdq))


@dataclass(frozen=True, kw_only=True, slots=True)
class SheetPlan:
    """Which frames a sheet shows, and the caps its video is checked against."""

    limits: video.VideoLimits
    #: seconds between sampled frames
    every: float = 1.0
    #: sampled frames at most (matched frames come on top)
    max_frames: int = 24
    #: the timestamps (seconds) of matched frames, each shown and marked
    matched: tuple[float, ...] = ()

    @classmethod
    def of(
        cls,
        matches: tuple[Match, ...],
        *,
        max_pixels: int,
        every: float,
        max_frames: int,
    ) -> SheetPlan:
        """The plan for a case: its matches' timestamps, the scan's pixel cap."""
        stamps = sorted({m.timestamp for m in matches if m.timestamp is not None})
        return cls(
            limits=video.VideoLimits(max_pixels=min(max_pixels, video.MAX_VIDEO_PIXELS)),
            every=every,
            max_frames=max_frames,
            matched=tuple(stamps[:MAX_MATCHED]),
        )

    def sampled(self, duration: float) -> list[float]:
        """The sampled times over ``duration`` seconds: one every ``every`` seconds, or
        ``max_frames`` spread evenly when that would be more (an unknown duration, 0,
        gives the first ``max_frames`` at ``every``)."""
        if duration <= 0:
            return [i * self.every for i in range(self.max_frames)]
        count = min(self.max_frames, max(1, math.ceil(duration / self.every - 1e-9)))
        step = max(self.every, duration / self.max_frames)
        return [i * step for i in range(count)]


@dataclass(frozen=True, kw_only=True, slots=True)
class SheetFrame:
    """One frame of a sheet: its time (ms from the video's start), its derivative (PNG),
    and the matched timestamps it shows."""

    ms: int
    png: bytes
    matched: tuple[float, ...] = ()

    @property
    def seconds(self) -> float:
        return self.ms / 1000


@dataclass(frozen=True, kw_only=True, slots=True)
class ContactSheet:
    """The frames of a video case; or, when nothing can be shown, why (``problem``)."""

    frames: tuple[SheetFrame, ...] = ()
    info: VideoInfo | None = None
    #: ``unsupported``, ``undecodable`` or ``error`` when no frame can be shown
    problem: Outcome | None = None
    #: why nothing, or not everything, could be shown
    reason: str = ""
    #: matched timestamps that no decoded frame showed (a video cut short)
    missing: tuple[float, ...] = ()

    def frame(self, ms: int) -> SheetFrame | None:
        return next((f for f in self.frames if f.ms == ms), None)

    def marks(self, matches: tuple[Match, ...]) -> dict[int, list[Match]]:
        """The matches each frame shows, by the frame's ms."""
        return {
            f.ms: [m for m in matches if m.timestamp is not None and m.timestamp in f.matched]
            for f in self.frames
            if f.matched
        }


def cannot_show(problem: Outcome, reason: str) -> ContactSheet:
    return ContactSheet(problem=problem, reason=reason[:300])


@dataclass(frozen=True, kw_only=True, slots=True)
class RevealedFrame:
    """One frame in colour (PNG), for a reveal; or why it cannot be shown."""

    png: bytes | None
    problem: Outcome | None = None
    reason: str = ""


# -- in the worker ------------------------------------------------------------------------


@contextmanager
def _opened(data: bytes, limits: video.VideoLimits) -> Iterator[tuple[Any, VideoInfo]]:
    """The video probed and checked (as scanning does), then opened for decoding.
    Raises ``UnsupportedFormat`` or ``DecodeError``."""
    container = video.sniff_video(data[:SNIFF_BYTES])
    if container is None:
        raise UnsupportedFormat("not a video container on the allowlist")
    missing = video.extra_missing()
    if missing:
        raise UnsupportedFormat(missing)
    import av  # noqa: PLC0415 - the video extra is optional

    # an anonymous file in memory: the decrypted video never touches a disk
    fd = os.memfd_create("hashguard-contact", os.MFD_CLOEXEC)
    try:
        with os.fdopen(fd, "wb", closefd=False) as memory:
            memory.write(data)
        path = f"/proc/self/fd/{fd}"
        info = video.probe(path, container, limits)
        try:
            opened = av.open(path, format=video.demuxer(container), metadata_errors="ignore")
        except av.FFmpegError as exc:
            raise DecodeError(f"{container} could not be opened: {exc}") from exc
        with opened:
            yield opened, info
    finally:
        os.close(fd)


def _frames(
    opened: Any, targets: list[float], tolerance: float, limits: video.VideoLimits
) -> Iterator[tuple[list[float], float, Any]]:
    """For each target time (seconds from the start), the first frame at or after it
    (within ``tolerance``): ``(targets it serves, its time, the frame)``, in order.
    Far targets are reached by seeking; targets past the end are not served."""
    stream = opened.streams.video[0]
    stream.codec_context.thread_count = 1  # one of several workers, under a memory cap
    base = stream.time_base
    start = stream.start_time or 0
    pending = deque(sorted(targets))
    position = 0.0
    while pending:
        if base is not None and pending[0] - position > SEEK_GAP:
            opened.seek(start + int(pending[0] / base), stream=stream, backward=True)
        for frame in opened.decode(stream):
            if frame.pts is None or base is None:
                continue
            if frame.width * frame.height > limits.max_pixels:
                raise DecodeError(f"a frame of {frame.width}x{frame.height} is over the cap")
            position = float((frame.pts - start) * base)
            if position < pending[0] - tolerance:
                continue
            served = []
            while pending and pending[0] - tolerance <= position:
                served.append(pending.popleft())
            yield served, position, frame
            if not pending or pending[0] - position > SEEK_GAP:
                break
        else:
            return


def _reduced(frame: Any, side: int, fmt: str) -> Any:
    """``frame`` converted to ``fmt`` and reduced (by swscale) to at most ``side``."""
    scale = min(1.0, side / max(frame.width, frame.height))
    width, height = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
    return frame.reformat(width=width, height=height, format=fmt)


def _tolerance(info: VideoInfo) -> float:
    """Half a frame: a matched frame's timestamp finds that very frame."""
    return 0.5 / info.fps if info.fps > 0 else 0.02


def make_sheet(data: bytes, plan: SheetPlan) -> ContactSheet:
    """The contact sheet of the video ``data`` (run in a worker: ``HashingPool.call``)."""
    missing = video.extra_missing()
    if missing:
        return cannot_show(Outcome.UNSUPPORTED, missing)
    import av  # noqa: PLC0415 - the video extra is optional

    frames: list[SheetFrame] = []
    reason = ""
    try:
        with _opened(data, plan.limits) as (opened, info):
            matched = set(plan.matched)
            targets = sorted({*plan.sampled(info.duration), *matched})
            try:
                for served, at, frame in _frames(opened, targets, _tolerance(info), plan.limits):
                    luma = _reduced(frame, SHEET_SIDE, "gray").to_ndarray()
                    frames.append(
                        SheetFrame(
                            ms=round(at * 1000),
                            png=derivative_of(luma).png,
                            matched=tuple(t for t in served if t in matched),
                        )
                    )
            except (av.FFmpegError, DecodeError) as exc:
                if not frames:
                    raise DecodeError(f"no frame could be decoded: {exc}") from exc
                reason = f"decoding stopped after {len(frames)} frames: {exc}"
    except UnsupportedFormat as exc:
        return cannot_show(Outcome.UNSUPPORTED, str(exc))
    except (DecodeError, av.FFmpegError) as exc:
        return cannot_show(Outcome.UNDECODABLE, str(exc))
    if not frames:
        return cannot_show(Outcome.UNDECODABLE, "the video yielded no decodable frame")
    last = frames[-1].seconds
    if not reason and targets[-1] - last > CUT_SHORT:
        reason = f"the video ended at {last:g} s, before {targets[-1]:g} s: it may be cut short"
    shown = {t for f in frames for t in f.matched}
    return ContactSheet(
        frames=tuple(frames),
        info=info,
        reason=reason[:300],
        missing=tuple(t for t in plan.matched if t not in shown),
    )


def reveal_frame(data: bytes, limits: video.VideoLimits, ms: int) -> RevealedFrame:
    """The frame at ``ms`` in colour, at most ``REVEAL_SIDE`` (run in a worker)."""
    missing = video.extra_missing()
    if missing:
        return RevealedFrame(png=None, problem=Outcome.UNSUPPORTED, reason=missing)
    import av  # noqa: PLC0415 - the video extra is optional

    try:
        with _opened(data, limits) as (opened, info):
            for _, at, frame in _frames(opened, [ms / 1000], _tolerance(info), limits):
                if round(at * 1000) != ms:
                    break
                image = _reduced(frame, REVEAL_SIDE, "rgb24").to_image()
                out = io.BytesIO()
                image.save(out, format="PNG")
                return RevealedFrame(png=out.getvalue())
    except UnsupportedFormat as exc:
        return RevealedFrame(png=None, problem=Outcome.UNSUPPORTED, reason=str(exc)[:300])
    except (DecodeError, av.FFmpegError) as exc:
        return RevealedFrame(png=None, problem=Outcome.UNDECODABLE, reason=str(exc)[:300])
    return RevealedFrame(
        png=None, problem=Outcome.UNDECODABLE, reason=f"no frame at {ms / 1000:g} s"
    )


# -- in the server ------------------------------------------------------------------------


class SheetCache:
    """The last ``size`` sheets made (derivatives only, in memory), each made once even
    when several requests want it at the same moment. Sheets that could not be made
    (a ``problem``) are not kept: a worker that ran out of time may do better later."""

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._sheets: OrderedDict[Hashable, ContactSheet] = OrderedDict()
        self._making: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, make: Callable[[], ContactSheet]) -> ContactSheet:
        with self._lock:
            found = self._sheets.get(key)
            if found is not None:
                self._sheets.move_to_end(key)
                return found
            making = self._making.setdefault(key, threading.Lock())
        with making:
            with self._lock:
                found = self._sheets.get(key)
            if found is not None:
                return found
            try:
                made = make()
            finally:
                with self._lock:
                    self._making.pop(key, None)
            if made.problem is None:
                with self._lock:
                    self._sheets[key] = made
                    while len(self._sheets) > self._size:
                        self._sheets.popitem(last=False)
            return made

    def __len__(self) -> int:
        with self._lock:
            return len(self._sheets)
