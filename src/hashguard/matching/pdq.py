"""PDQ index: every entry within its bank's Hamming-distance threshold of a query hash.

An exact range search over packed 256-bit hashes (XOR and popcount with numpy). It is
correct by construction and the tests hold it to a brute-force oracle; the scale work
(multi-index hashing, snapshots) replaces its internals behind the same interface.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_WORDS = 4  # 256 bits as four uint64 words


def pack(value: str) -> npt.NDArray[np.uint64]:
    return np.frombuffer(bytes.fromhex(value), dtype=">u8").astype(np.uint64)


class PdqIndex:
    def __init__(self) -> None:
        self._pending_hashes: list[npt.NDArray[np.uint64]] = []
        self._pending_thresholds: list[int] = []
        self._pending_refs: list[int] = []
        self._hashes = np.empty((0, _WORDS), dtype=np.uint64)
        self._thresholds = np.empty(0, dtype=np.int16)
        self._refs = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._refs) + len(self._pending_refs)

    def add(self, value: str, *, threshold: int, ref: int) -> None:
        self._pending_hashes.append(pack(value))
        self._pending_thresholds.append(threshold)
        self._pending_refs.append(ref)

    def _consolidate(self) -> None:
        if self._pending_refs:
            self._hashes = np.concatenate([self._hashes, np.stack(self._pending_hashes)])
            self._thresholds = np.concatenate(
                [self._thresholds, np.asarray(self._pending_thresholds, dtype=np.int16)]
            )
            self._refs = np.concatenate(
                [self._refs, np.asarray(self._pending_refs, dtype=np.int64)]
            )
            self._pending_hashes.clear()
            self._pending_thresholds.clear()
            self._pending_refs.clear()

    def search(self, value: str) -> list[tuple[int, int]]:
        """``(ref, distance)`` for every entry whose distance is within its threshold."""
        self._consolidate()
        if not len(self._refs):
            return []
        distances = np.bitwise_count(self._hashes ^ pack(value)).sum(axis=1, dtype=np.int16)
        hits = np.flatnonzero(distances <= self._thresholds)
        return [(int(self._refs[i]), int(distances[i])) for i in hits]
