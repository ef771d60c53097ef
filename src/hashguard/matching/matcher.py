"""The Matcher: one file's signals against every enabled bank, with allow-list suppression.

It holds an exact-hash index and a PDQ index over the live entries of every bank, each
entry known only by its store row id (the payload) and bank number. Bank settings
(enabled, kind, threshold) are applied at query time, so changing them needs no
rebuild; entry changes are applied incrementally from the store's change sequence
(``refresh``), and the whole matcher can be saved to and loaded from a snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from hashguard.domain.banks import DEFAULT_PDQ_THRESHOLD, Bank, BankKind, EntryChanges, IndexRows
from hashguard.domain.matches import Match
from hashguard.domain.signals import (
    DIHEDRAL_NAMES,
    EXACT_ALGORITHMS,
    FAST_CONFIRM_MARGIN,
    Algorithm,
    FileSignals,
    PdqMode,
)
from hashguard.domain.video import VpdqFrame, frames_of_signal
from hashguard.matching import snapshot
from hashguard.matching.exact import CODES, ExactIndex, digests
from hashguard.matching.pdq import PdqIndex, pack
from hashguard.matching.vpdq import VideoBanks, VideoMatch, VpdqThresholds

SNAPSHOT_VERSION = 2
#: Fold pending changes into fresh indexes once they exceed this share of the entries.
COMPACT_SHARE = 0.02
COMPACT_MIN = 10_000


class EntrySource(Protocol):
    """What the matcher reads from the store (``BankStore`` provides it)."""

    def list(self) -> list[Bank]: ...
    def store_id(self) -> str: ...
    def change_seq(self) -> int: ...
    def index_rows(self, batch: int = ...) -> Iterator[IndexRows]: ...
    def changes_since(self, seq: int) -> EntryChanges: ...
    def describe(self, ids: Iterable[int]) -> dict[int, tuple[str | None, str | None]]: ...
    def vpdq_frames(self, ids: Iterable[int]) -> dict[int, tuple[VpdqFrame, ...]]: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class _Found:
    payload: int
    bank: int
    algorithm: Algorithm
    distance: int
    frame: int = 0
    transform: str = "original"
    timestamp: float | None = None
    video: VideoMatch | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Screened:
    """A file's matches, and whether they must be confirmed: a ``fast``-mode PDQ hash of
    the file lies within a bank's threshold plus ``FAST_CONFIRM_MARGIN`` of an entry, so
    the file's reference hash decides (``hashguard.scan.confirm``)."""

    matches: tuple[Match, ...]
    confirm: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class _Columns:
    """Index input as arrays, split into PDQ and exact entries."""

    pdq_hashes: npt.NDArray[np.uint64]
    pdq_payloads: npt.NDArray[np.int64]
    pdq_banks: npt.NDArray[np.uint16]
    exact_codes: npt.NDArray[np.uint8]
    exact_digests: npt.NDArray[np.uint8]
    exact_payloads: npt.NDArray[np.int64]
    exact_banks: npt.NDArray[np.uint16]
    #: vPDQ entries (listed videos) by payload: their bank numbers (frames read apart)
    videos: dict[int, int]


class Matcher:
    """Matches signals against a store's banks; see the module docstring."""

    def __init__(
        self,
        source: EntrySource,
        *,
        store_id: str,
        seq: int,
        bank_ids: Sequence[int],
        exact: ExactIndex,
        pdq: PdqIndex,
        videos: VideoBanks | None = None,
    ) -> None:
        self._source = source
        self._videos = videos if videos is not None else VideoBanks()
        self.store_id = store_id
        self.seq = seq
        self._bank_ids = list(bank_ids)
        self._numbers = {bank_id: number for number, bank_id in enumerate(self._bank_ids)}
        self._exact = exact
        self._pdq = pdq
        self._by_number: list[Bank | None] = []
        self._thresholds = np.empty(0, np.int16)
        self.banks: tuple[Bank, ...] = ()
        self._use_banks(source.list())

    # -- building, refreshing, saving ----------------------------------------------------

    @classmethod
    def build(cls, source: EntrySource) -> Matcher:
        """Index every live entry of the store, then catch up with changes made meanwhile."""
        store_id, seq, banks = source.store_id(), source.change_seq(), source.list()
        bank_ids = [bank.id for bank in banks]
        numbers = {bank_id: number for number, bank_id in enumerate(bank_ids)}
        columns = _columns(source.index_rows(), numbers)
        threshold = max([DEFAULT_PDQ_THRESHOLD, *(bank.pdq_threshold for bank in banks)])
        matcher = cls(
            source,
            store_id=store_id,
            seq=seq,
            bank_ids=bank_ids,
            exact=ExactIndex(
                columns.exact_codes,
                columns.exact_digests,
                columns.exact_payloads,
                columns.exact_banks,
            ),
            pdq=PdqIndex(
                columns.pdq_hashes, columns.pdq_payloads, columns.pdq_banks, threshold=threshold
            ),
            videos=_video_banks(source, columns.videos),
        )
        matcher.refresh()
        return matcher

    def refresh(self) -> int:
        """Apply bank settings and entry changes committed since this matcher's ``seq``;
        returns the number of entries added, changed or removed."""
        return self.apply(*self.pull())

    def pull(self) -> tuple[EntryChanges, list[Bank]]:
        """Read what changed in the store (I/O only; ``apply`` changes the indexes)."""
        return self._source.changes_since(self.seq), self._source.list()

    def apply(self, changes: EntryChanges, banks: list[Bank]) -> int:
        """Apply pulled changes; a pull older than this matcher's state is ignored."""
        if changes.seq < self.seq:
            return 0
        self._use_banks(banks)
        touched = np.asarray([*changes.removed, *changes.live.ids], dtype=np.int64)
        if len(touched):
            self._pdq.remove(touched)
            self._exact.remove(touched)
            self._videos.remove(touched.tolist())
            columns = _columns([changes.live], self._numbers)
            self._videos.add(_listed_videos(self._source, columns.videos))
            self._pdq.add(columns.pdq_hashes, columns.pdq_payloads, columns.pdq_banks)
            self._exact.add(
                columns.exact_codes,
                columns.exact_digests,
                columns.exact_payloads,
                columns.exact_banks,
            )
        self.seq = changes.seq
        return len(touched)

    @property
    def pending(self) -> int:
        """Changes held outside the main indexes (searched by brute force until compacted)."""
        return self._pdq.pending + self._exact.pending

    def compacted(self) -> Matcher:
        threshold = max([self._pdq.layout.threshold, *(b.pdq_threshold for b in self.banks)])
        return Matcher(
            self._source,
            store_id=self.store_id,
            seq=self.seq,
            bank_ids=self._bank_ids,
            exact=self._exact.compacted(),
            pdq=self._pdq.compacted(threshold),
            videos=self._videos,
        )

    def save(self, path: Path) -> None:
        arrays = {f"pdq.{k}": v for k, v in self._pdq.arrays().items()}
        arrays |= {f"exact.{k}": v for k, v in self._exact.arrays().items()}
        # listed videos by payload and bank; their frames are read from the store on load
        listed = self._videos.listed()
        arrays["vpdq.payloads"] = np.asarray(list(listed), dtype=np.int64)
        arrays["vpdq.banks"] = np.asarray(list(listed.values()), dtype=np.uint16)
        meta = {
            "version": SNAPSHOT_VERSION,
            "store_id": self.store_id,
            "seq": self.seq,
            "bank_ids": self._bank_ids,
            "pdq_threshold": self._pdq.layout.threshold,
        }
        snapshot.write(path, arrays, meta)

    @classmethod
    def load(cls, path: Path, source: EntrySource) -> Matcher:
        """A saved matcher, checked to belong to ``source``'s store, then refreshed."""
        arrays, meta = snapshot.read(path)
        if meta.get("version") != SNAPSHOT_VERSION or meta.get("store_id") != source.store_id():
            raise snapshot.SnapshotError(f"{path} was saved from another store or version")
        try:
            pdq = PdqIndex.from_arrays(
                {k[4:]: v for k, v in arrays.items() if k.startswith("pdq.")},
                threshold=int(meta["pdq_threshold"]),
            )
            exact = ExactIndex.from_arrays(
                {k[6:]: v for k, v in arrays.items() if k.startswith("exact.")}
            )
            matcher = cls(
                source,
                store_id=str(meta["store_id"]),
                seq=int(meta["seq"]),
                bank_ids=[int(b) for b in meta["bank_ids"]],
                exact=exact,
                pdq=pdq,
                videos=_video_banks(
                    source,
                    dict(
                        zip(
                            arrays["vpdq.payloads"].tolist(),
                            arrays["vpdq.banks"].tolist(),
                            strict=True,
                        )
                    ),
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise snapshot.SnapshotError(f"{path} has an inconsistent index: {exc}") from exc
        matcher.refresh()
        return matcher

    def _use_banks(self, banks: Sequence[Bank]) -> None:
        for bank in banks:
            if bank.id not in self._numbers:
                self._numbers[bank.id] = len(self._bank_ids)
                self._bank_ids.append(bank.id)
        by_id = {bank.id: bank for bank in banks}
        self._by_number = [by_id.get(bank_id) for bank_id in self._bank_ids]
        self._thresholds = np.array(
            [b.pdq_threshold if b is not None and b.enabled else -1 for b in self._by_number],
            dtype=np.int16,
        )
        self.banks = tuple(b for b in self._by_number if b is not None and b.enabled)
        self._videos.configure(
            {
                number: VpdqThresholds(
                    query_percent=b.vpdq_query_percent,
                    compared_percent=b.vpdq_compared_percent,
                    distance=b.pdq_threshold,
                )
                for number, b in enumerate(self._by_number)
                if b is not None and b.enabled
            }
        )

    def video_frames(self) -> dict[int, tuple[VpdqFrame, ...]]:
        """The listed videos' frames by payload (what a shipped copy of the index needs
        besides its snapshot: ``hashguard.scan.rayactor``)."""
        return self._videos.frames()

    def __len__(self) -> int:
        return len(self._pdq) + len(self._exact) + len(self._videos)

    def sizes(self) -> dict[Algorithm, int]:
        """Live entries held, by algorithm."""
        exact = {algorithm: self._exact.count(CODES[algorithm]) for algorithm in EXACT_ALGORITHMS}
        return exact | {Algorithm.PDQ: len(self._pdq), Algorithm.VPDQ: len(self._videos)}

    # -- matching ------------------------------------------------------------------------

    def match(self, signals: FileSignals) -> tuple[Match, ...]:
        """Every match of the file, allow-bank suppression applied (``screen``, without
        asking whether a ``fast`` hash must be confirmed)."""
        return self.screen(signals).matches

    def screen(self, signals: FileSignals) -> Screened:
        """Every match of the file, allow-bank suppression applied, and whether a
        ``fast``-mode hash came near an entry (then the reference hash must decide).

        Suppression: an exact-hash allow match means this very file was vetted as a
        false positive, so it suppresses every known match of the file. A PDQ allow
        match suppresses the PDQ known matches of the same frame only: a file whose
        exact bytes are on a known list is not excused by looking like an allowed
        image. Low-quality PDQ hashes (quality < 50) are not used for distance matching.
        A video's sampled frames (its vPDQ features, PDQ hashes of frames) and those of
        an animated image hashed like a video (PDQ hashes with a timestamp) are matched
        against the PDQ banks the same way, each match carrying the frame's timestamp.
        """
        found = self._exact_matches([(a, signals.exact(a)) for a in EXACT_ALGORITHMS])
        confirm = False
        for frame_hash in signals.pdq:
            if frame_hash.timestamp is None and not frame_hash.low_quality:
                margin = FAST_CONFIRM_MARGIN if frame_hash.mode is PdqMode.FAST else 0
                hits, near = self._pdq_matches(
                    frame_hash.frame, (frame_hash.value, *frame_hash.dihedral), margin=margin
                )
                found.extend(hits)
                confirm = confirm or near
        found.extend(self._frame_matches(signals))
        found.extend(self._video_matches(signals.vpdq))
        (matches,) = self._described([found])
        return Screened(matches=_suppress(matches), confirm=confirm)

    def _video_matches(self, frames: Sequence[VpdqFrame]) -> list[_Found]:
        """The listed videos (vPDQ entries) a video with these frames matches."""
        return [
            _Found(
                payload=payload,
                bank=bank,
                algorithm=Algorithm.VPDQ,
                distance=video.distance,
                timestamp=video.timestamps[0] if video.timestamps else None,
                video=video,
            )
            for bank, payload, video in self._videos.search(frames)
        ]

    def _frame_matches(self, signals: FileSignals) -> list[_Found]:
        """PDQ-bank entries that a video's sampled frames match: per entry the closest
        frame, the earliest of equally close ones (one match per entry, as for images)."""
        best: dict[int, _Found] = {}
        frames = [(f.frame, f.value, f.timestamp) for f in signals.vpdq if not f.low_quality]
        frames += [
            (p.frame, p.value, p.timestamp)
            for p in signals.pdq
            if p.timestamp is not None and not p.low_quality
        ]
        for frame, value, timestamp in frames:
            hits, _ = self._pdq_matches(frame, (value,))
            for hit in hits:
                known = best.get(hit.payload)
                if known is None or hit.distance < known.distance:
                    best[hit.payload] = replace(hit, timestamp=timestamp)
        return list(best.values())

    def lookup(self, queries: Sequence[tuple[Algorithm, str]]) -> list[tuple[Match, ...]]:
        """Matches of hashes computed elsewhere, one tuple per query, each suppressed
        on its own (an allow match of the same hash suppresses the known ones). A
        ``vpdq`` query is one video's frames as a canonical ``vpdq_signal``: it is
        matched against the listed videos (vPDQ entries), as a scanned video is."""
        found = [
            self._pdq_matches(0, (value,))[0]
            if algorithm is Algorithm.PDQ
            else self._exact_matches([(algorithm, value)])
            if algorithm.is_exact
            else self._video_matches(_query_frames(value))
            for algorithm, value in queries
        ]
        return [_suppress(matches) for matches in self._described(found)]

    def _exact_matches(self, queries: Sequence[tuple[Algorithm, str]]) -> list[_Found]:
        return [
            _Found(payload=hit.payload, bank=hit.bank, algorithm=hit.algorithm, distance=0)
            for hit in self._exact.lookup(queries)
            if self._enabled(hit.bank)
        ]

    def _described(self, groups: Sequence[list[_Found]]) -> list[list[Match]]:
        """Matches with the list's entry id and category, fetched in one store query."""
        payloads = [item.payload for group in groups for item in group]
        described = self._source.describe(payloads) if payloads else {}
        result = []
        for group in groups:
            matches = []
            for item in group:
                bank = self._by_number[item.bank]
                assert bank is not None
                entry_id, category = described.get(item.payload, (None, None))
                matches.append(
                    Match(
                        bank=bank.name,
                        bank_kind=bank.kind,
                        algorithm=item.algorithm,
                        distance=item.distance,
                        entry_id=entry_id,
                        category=category,
                        frame=item.frame,
                        transform=item.transform,
                        timestamp=item.timestamp,
                        query_percent=None if item.video is None else item.video.query_percent,
                        compared_percent=(
                            None if item.video is None else item.video.compared_percent
                        ),
                        timestamps=() if item.video is None else item.video.timestamps,
                        entry_ref=item.payload,
                    )
                )
            result.append(matches)
        return result

    def _enabled(self, bank: int) -> bool:
        return bank < len(self._thresholds) and self._thresholds[bank] >= 0

    def _pdq_matches(
        self, frame: int, variants: Sequence[str], *, margin: int = 0
    ) -> tuple[list[_Found], bool]:
        """Entries within their bank's threshold of any variant, and whether any lies
        beyond it but within ``margin`` more bits (one search answers both)."""
        best: dict[int, tuple[int, int, int]] = {}  # payload -> (distance, variant, bank)
        near = False
        widened = np.where(self._thresholds >= 0, self._thresholds + margin, -1).astype(np.int16)
        for variant, value in enumerate(variants):
            hits = self._pdq.search(pack([value])[0], widened)
            for payload, bank, distance in zip(
                hits.payloads.tolist(), hits.banks.tolist(), hits.distances.tolist(), strict=True
            ):
                if distance > self._thresholds[bank]:
                    near = True
                elif payload not in best or distance < best[payload][0]:
                    best[payload] = (distance, variant, bank)
        found = [
            _Found(
                payload=payload,
                bank=bank,
                algorithm=Algorithm.PDQ,
                distance=distance,
                frame=frame,
                transform=DIHEDRAL_NAMES[variant],
            )
            for payload, (distance, variant, bank) in sorted(best.items(), key=lambda i: i[1])
        ]
        return found, near


def _columns(batches: Iterable[IndexRows], numbers: dict[int, int]) -> _Columns:
    pdq_values: list[str] = []
    pdq_payloads: list[int] = []
    pdq_banks: list[int] = []
    exact_values: list[str] = []
    exact_codes: list[int] = []
    exact_payloads: list[int] = []
    exact_banks: list[int] = []
    videos: dict[int, int] = {}
    for rows in batches:
        for row_id, bank_id, algorithm, value in zip(
            rows.ids, rows.bank_ids, rows.algorithms, rows.values, strict=True
        ):
            number = numbers.get(bank_id)
            if number is None:
                continue  # a bank created after the bank list was read: the next refresh
            if algorithm is Algorithm.PDQ:
                pdq_values.append(value)
                pdq_payloads.append(row_id)
                pdq_banks.append(number)
            elif algorithm is Algorithm.VPDQ:
                videos[row_id] = number
            else:
                exact_values.append(value)
                exact_codes.append(CODES[algorithm])
                exact_payloads.append(row_id)
                exact_banks.append(number)
    return _Columns(
        pdq_hashes=pack(pdq_values),
        pdq_payloads=np.asarray(pdq_payloads, dtype=np.int64),
        pdq_banks=np.asarray(pdq_banks, dtype=np.uint16),
        exact_codes=np.asarray(exact_codes, dtype=np.uint8),
        exact_digests=digests(exact_values),
        exact_payloads=np.asarray(exact_payloads, dtype=np.int64),
        exact_banks=np.asarray(exact_banks, dtype=np.uint16),
        videos=videos,
    )


def _listed_videos(
    source: EntrySource, banks: dict[int, int]
) -> dict[int, tuple[int, tuple[VpdqFrame, ...]]]:
    """Listed videos (payload -> bank number) with their frames, read from the store."""
    if not banks:
        return {}
    frames = source.vpdq_frames(banks)
    return {p: (bank, frames[p]) for p, bank in banks.items() if p in frames}


def _video_banks(source: EntrySource, banks: dict[int, int]) -> VideoBanks:
    videos = VideoBanks()
    videos.add(_listed_videos(source, banks))
    return videos


def _query_frames(value: str) -> tuple[VpdqFrame, ...]:
    """A vpdq query's frames. A listed video's digest (how the entries API names one)
    is no video: it has no frames, so it matches nothing and reveals nothing."""
    try:
        return frames_of_signal(value)
    except (ValueError, TypeError):
        return ()


def _suppress(matches: list[Match]) -> tuple[Match, ...]:
    allow = [m for m in matches if m.bank_kind is BankKind.ALLOW]
    if not allow:
        return tuple(matches)
    exact_allow = next((m for m in allow if m.algorithm.is_exact), None)
    frame_allow = {m.frame: m for m in allow if m.algorithm is Algorithm.PDQ}
    # a video like an allowed video excuses its vPDQ matches, not its exact or frame ones
    video_allow = next((m for m in allow if m.algorithm is Algorithm.VPDQ), None)
    result = []
    for match in matches:
        by = None
        if match.bank_kind is BankKind.KNOWN:
            by = exact_allow
            if by is None and match.algorithm is Algorithm.PDQ:
                by = frame_allow.get(match.frame)
            if by is None and match.algorithm is Algorithm.VPDQ:
                by = video_allow
        result.append(match if by is None else replace(match, suppressed_by=by.bank))
    return tuple(result)


def load_or_build(source: EntrySource, path: Path) -> Matcher:
    """The store's matcher from the snapshot at ``path`` when it is valid (then caught up
    with the store), else built afresh; the snapshot is rewritten when that saves work
    next time (after a build, or once pending changes are worth compacting)."""
    try:
        matcher = Matcher.load(path, source)
    except snapshot.SnapshotError:
        matcher = Matcher.build(source)
        rebuilt = True
    else:
        rebuilt = False
    if rebuilt or matcher.pending > max(COMPACT_MIN, COMPACT_SHARE * len(matcher)):
        if matcher.pending:
            matcher = matcher.compacted()
        matcher.save(path)
    return matcher
