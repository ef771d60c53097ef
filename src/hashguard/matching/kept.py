"""The PDQ index over kept signals, queried with new bank entries (retro-matching).

The same exact range search as the bank index (``matching.pdq.PdqIndex``), built the
other way round: its rows are the kept signals' reference PDQ hashes (low-quality ones
left out, as the matcher leaves them out of distance matching) and its queries are the
entries a bank gained. A row's payload is its position; ``kept_ids`` maps it to the
kept signal (one item may have several frames' hashes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from hashguard.domain.signals import PDQ_MIN_QUALITY
from hashguard.matching.pdq import DEFAULT_THRESHOLD, PdqIndex, pack


@dataclass(frozen=True, kw_only=True, slots=True)
class KeptHit:
    """A new entry (by its position in the query list) near a kept signal."""

    query: int
    kept_id: int
    distance: int


class KeptIndex:
    """Kept signals' PDQ hashes, searchable by a new entry within its bank's threshold."""

    def __init__(
        self,
        hashes: npt.NDArray[np.uint64],
        kept_ids: npt.NDArray[np.int64],
        *,
        threshold: int = DEFAULT_THRESHOLD,
    ) -> None:
        self.kept_ids = kept_ids
        self._index = PdqIndex(
            hashes,
            np.arange(len(kept_ids), dtype=np.int64),
            np.zeros(len(kept_ids), dtype=np.uint16),
            threshold=threshold,
        )

    @classmethod
    def from_rows(
        cls, batches: Iterable[Sequence[tuple[int, int, list[Any]]]], *, threshold: int
    ) -> KeptIndex:
        """From ``KeptStore.pdq_rows()``: ``(kept id, checked_seq, [[hex, quality]...])``."""
        values: list[str] = []
        ids: list[int] = []
        for batch in batches:
            for kept_id, _seq, hashes in batch:
                for value, quality in hashes:
                    if int(quality) >= PDQ_MIN_QUALITY:
                        values.append(str(value))
                        ids.append(kept_id)
        return cls(pack(values), np.asarray(ids, dtype=np.int64), threshold=threshold)

    def __len__(self) -> int:
        return len(self.kept_ids)

    @property
    def nbytes(self) -> int:
        """Memory held by the index's arrays."""
        arrays = self._index.arrays() if len(self._index) else {}
        return int(sum(a.nbytes for a in arrays.values())) + int(self.kept_ids.nbytes)

    def search(self, queries: Sequence[str], thresholds: Sequence[int]) -> list[KeptHit]:
        """Every kept signal within ``thresholds[i]`` bits of new entry ``queries[i]``."""
        if not queries or not len(self.kept_ids):
            return []
        which, payloads, distances = self._index.search_many(
            pack(list(queries)), np.asarray(thresholds, dtype=np.int16)
        )
        kept = self.kept_ids[payloads]
        return [
            KeptHit(query=q, kept_id=k, distance=d)
            for q, k, d in zip(which.tolist(), kept.tolist(), distances.tolist(), strict=True)
        ]
