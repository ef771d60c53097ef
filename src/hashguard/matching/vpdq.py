"""vPDQ video matching with the reference's semantics, over the PDQ index for frame look-ups.

The reference (threatexchange's ``match_VPDQ_hash_brute``): both videos' features are
deduplicated by hash and those of quality below 50 dropped; a frame matches when some
frame of the other video lies within 31 bits; the *query* percentage is the share of
the query's frames that match, the *compared* percentage the share of the listed
video's frames that match; a video matches when both reach their thresholds (80 % and
0 % by default; per bank here). This index gets the same percentages from one
``PdqIndex`` search per query frame instead of comparing every pair.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hashguard.domain.video import VPDQ_MIN_QUALITY, VpdqFrame
from hashguard.matching.pdq import PdqIndex, pack

#: the reference's per-frame distance (``VPDQ_DISTANCE_THRESHOLD``)
VPDQ_DISTANCE = 31
#: the reference's thresholds (``VPDQ_QUERY_MATCH_THRESHOLD_PERCENT`` and
#: ``VPDQ_INDEX_MATCH_THRESHOLD_PERCENT``)
QUERY_PERCENT = 80.0
COMPARED_PERCENT = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class VpdqThresholds:
    """A bank's thresholds for vPDQ matches."""

    query_percent: float = QUERY_PERCENT
    compared_percent: float = COMPARED_PERCENT
    distance: int = VPDQ_DISTANCE


@dataclass(frozen=True, kw_only=True, slots=True)
class VideoMatch:
    """A listed video that the query matched, with both percentages and the query's
    timestamps whose frames matched it."""

    video: str
    query_percent: float
    compared_percent: float
    timestamps: tuple[float, ...]
    #: the median, over the query's matched frames, of each one's closest distance
    distance: int = 0


def usable(frames: Sequence[VpdqFrame]) -> list[VpdqFrame]:
    """The reference's ``quality_filter(dedupe(...))``: the first frame of each distinct
    hash, of quality 50 or more."""
    seen: set[str] = set()
    kept = []
    for frame in frames:
        if frame.value not in seen:
            seen.add(frame.value)
            if frame.quality >= VPDQ_MIN_QUALITY:
                kept.append(frame)
    return kept


class VpdqIndex:
    """Listed videos (each a set of vPDQ frames), searchable by a query video."""

    def __init__(
        self, videos: Mapping[str, Sequence[VpdqFrame]], thresholds: VpdqThresholds
    ) -> None:
        self.thresholds = thresholds
        self._names: list[str] = []
        self._sizes: list[int] = []
        owners: list[int] = []
        values: list[str] = []
        for name, frames in videos.items():
            kept = usable(frames)
            if not kept:
                continue  # the reference cannot match a video without a usable frame
            self._names.append(name)
            self._sizes.append(len(kept))
            owners.extend([len(self._names) - 1] * len(kept))
            values.extend(f.value for f in kept)
        self._owners = np.asarray(owners, dtype=np.int64)
        self._index = (
            PdqIndex(
                pack(values),
                np.arange(len(values), dtype=np.int64),
                np.zeros(len(values), np.uint16),
                threshold=thresholds.distance,
            )
            if values
            else PdqIndex.empty(thresholds.distance)
        )

    def search(self, query: Sequence[VpdqFrame]) -> list[VideoMatch]:
        """The listed videos ``query`` matches under the thresholds, best first."""
        frames = usable(query)
        if not frames or not self._names:
            return []
        limit = np.asarray([self.thresholds.distance], dtype=np.int16)
        query_hits: dict[int, list[float]] = defaultdict(list)
        closest: dict[int, list[int]] = defaultdict(list)
        listed_hits: dict[int, set[int]] = defaultdict(set)
        for frame in frames:
            hits = self._index.search(pack([frame.value])[0], limit)
            best: dict[int, int] = {}
            for row, distance in zip(hits.payloads.tolist(), hits.distances.tolist(), strict=True):
                video = int(self._owners[row])
                best[video] = min(distance, best.get(video, distance))
                listed_hits[video].add(row)
            for video, distance in best.items():
                query_hits[video].append(frame.timestamp)
                closest[video].append(distance)
        found = []
        for video, stamps in query_hits.items():
            query_percent = len(stamps) * 100 / len(frames)
            compared_percent = len(listed_hits[video]) * 100 / self._sizes[video]
            if (
                query_percent >= self.thresholds.query_percent
                and compared_percent >= self.thresholds.compared_percent
            ):
                found.append(
                    VideoMatch(
                        video=self._names[video],
                        query_percent=query_percent,
                        compared_percent=compared_percent,
                        timestamps=tuple(stamps),
                        distance=int(np.median(closest[video])),
                    )
                )
        return sorted(found, key=lambda m: (-m.query_percent, -m.compared_percent, m.video))


class VideoBanks:
    """The vPDQ entries of every bank (each a listed video), searched with each bank's
    thresholds: one ``VpdqIndex`` per bank, rebuilt when its entries or settings change
    (video lists are small next to image lists)."""

    def __init__(self) -> None:
        self._videos: dict[int, tuple[int, tuple[VpdqFrame, ...]]] = {}
        self._settings: dict[int, VpdqThresholds] = {}
        self._indexes: dict[int, VpdqIndex] | None = None

    def __len__(self) -> int:
        return len(self._videos)

    def listed(self) -> dict[int, int]:
        """Each listed video's bank number, by payload."""
        return {payload: bank for payload, (bank, _) in self._videos.items()}

    def frames(self) -> dict[int, tuple[VpdqFrame, ...]]:
        """Each listed video's frames, by payload."""
        return {payload: frames for payload, (_, frames) in self._videos.items()}

    def remove(self, payloads: Sequence[int]) -> None:
        for payload in payloads:
            if self._videos.pop(payload, None) is not None:
                self._indexes = None

    def add(self, videos: Mapping[int, tuple[int, Sequence[VpdqFrame]]]) -> None:
        """Add (or replace) listed videos: payload -> (bank number, frames)."""
        for payload, (bank, frames) in videos.items():
            self._videos[payload] = (bank, tuple(frames))
        if videos:
            self._indexes = None

    def configure(self, settings: Mapping[int, VpdqThresholds]) -> None:
        """Each enabled bank's thresholds by bank number (a bank not named is not searched)."""
        if dict(settings) != self._settings:
            self._settings = dict(settings)
            self._indexes = None

    def search(self, query: Sequence[VpdqFrame]) -> list[tuple[int, int, VideoMatch]]:
        """(bank number, payload, match) of every listed video ``query`` matches."""
        if not query or not self._videos:
            return []
        if self._indexes is None:
            by_bank: dict[int, dict[str, tuple[VpdqFrame, ...]]] = defaultdict(dict)
            for payload, (bank, frames) in self._videos.items():
                if bank in self._settings:
                    by_bank[bank][str(payload)] = frames
            self._indexes = {
                bank: VpdqIndex(videos, self._settings[bank]) for bank, videos in by_bank.items()
            }
        return [
            (bank, int(found.video), found)
            for bank, index in sorted(self._indexes.items())
            for found in index.search(query)
        ]
