"""The three ways of hashing a clip that ``bench.video`` compares, run in a fresh process each.

Kept apart from ``bench.video`` so that the process imports only what its method needs:
its memory is then the method's (and Python's), not the benchmark's.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from typing import Any

SECONDS_PER_HASH = 1.0

Features = list[tuple[int, str, int]]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _pss_kb() -> int:
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def reference(path: str) -> Features:
    """Meta's vpdq, one thread, one frame a second."""
    import vpdq  # noqa: PLC0415

    found = vpdq.computeHash(path, seconds_per_hash=SECONDS_PER_HASH, thread_count=1)
    return [(int(f.frame_number), str(f.hex), int(f.quality)) for f in found]


def hashguard(path: str) -> Features:
    """What an isolated worker runs for a video: exact hashes, probe and caps, vpdq."""
    from hashguard.hashing.kernel import HashOptions, hash_data  # noqa: PLC0415

    with open(path, "rb") as clip:
        data = clip.read()
    output = hash_data(data, HashOptions(max_pixels=50_000_000))
    if output.signals is None or output.problem is not None:
        raise RuntimeError(f"hashguard did not hash {path}: {output.reason}")
    return [(f.frame, f.value, f.quality) for f in output.signals.vpdq]


def fast(path: str) -> Features:
    """The candidate: vpdq's sampled frames (every ``int(seconds x average rate)``-th,
    counted in display order here from the timestamps), decoding only the frames they
    depend on, each hashed from its luma plane on PDQ's 64 x 64 grid."""
    import av  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from hashguard.domain.signals import PdqMode  # noqa: PLC0415
    from hashguard.hashing.pdq import pdq_hash  # noqa: PLC0415
    from hashguard.hashing.pdqgrid import sample  # noqa: PLC0415

    found = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        context = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        every = max(int(SECONDS_PER_HASH * fps), 1)
        base = stream.time_base
        first: int | None = None

        def index(pts: int | None) -> int | None:
            if pts is None or first is None or base is None:
                return None
            return round(float((pts - first) * base) * fps)

        for packet in container.demux(stream):
            if first is None and packet.pts is not None:
                first = stream.start_time if stream.start_time is not None else packet.pts
            at = index(packet.pts)
            # a frame no other refers to is decoded only when it is a sampled one
            context.skip_frame = "DEFAULT" if at is None or at % every == 0 else "NONREF"
            for frame in packet.decode():
                number = index(frame.pts)
                if number is None or number % every:
                    continue
                plane = frame.planes[0]
                luma = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
                luma = luma[: frame.height, : frame.width]
                grid = sample(luma, frame.width, frame.height).astype(np.float32)
                if frame.color_range != 2:  # limited ("MPEG") range: 16-235 to 0-255
                    grid = (grid - 16.0) * (255.0 / 219.0)
                pixels = np.clip(np.rint(grid), 0, 255).astype(np.uint8)
                hashed = pdq_hash(pixels, mode=PdqMode.FAST, frame=number)
                found.append((number, hashed.value, hashed.quality))
    return sorted(found)


WAYS: dict[str, Callable[[str], Features]] = {
    "reference": reference,
    "hashguard": hashguard,
    "fast": fast,
}


def measure(method: str, path: str) -> dict[str, Any]:
    """CPU and wall seconds of hashing ``path`` once more after a first run (imports
    and first-use set-up are not what a worker pays per clip), its features, the
    process's peak RSS, its RSS before the first run, and its PSS after (kB)."""
    idle_kb = _status_kb("VmRSS")
    WAYS[method](path)
    cpu, wall = _cpu(), time.perf_counter()
    features = WAYS[method](path)
    return {
        "cpu": _cpu() - cpu,
        "wall": time.perf_counter() - wall,
        "features": features,
        "idle_kb": idle_kb,
        "max_rss_kb": _status_kb("VmHWM"),
        "pss_kb": _pss_kb(),
    }
