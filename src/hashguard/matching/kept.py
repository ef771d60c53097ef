"""The PDQ index over kept signals, queried with new bank entries (retro-matching).

The same exact range search as the bank index (``matching.pdq.PdqIndex``), built the
other way round: its rows are the kept signals' reference PDQ hashes and a kept video's
distinct vPDQ frame hashes (low-quality ones left out, as the matcher leaves them out
of distance matching) and its queries are the entries a bank gained (a new vPDQ entry:
its frames). A row's payload is its position; ``kept_ids`` maps it to the
kept signal (one item may have several frames' hashes) and ``checked_seqs`` to the bank
change sequence that item was last checked against (arrays, not dictionaries: 16 bytes
a row instead of about 100 at 10 M rows).
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
    checked_seq: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class KeptHits:
    """Many hits as parallel arrays (what a partition sends back to be merged)."""

    queries: npt.NDArray[np.int64]
    kept_ids: npt.NDArray[np.int64]
    distances: npt.NDArray[np.int16]
    checked_seqs: npt.NDArray[np.int64]

    @classmethod
    def merged(cls, parts: Iterable[KeptHits]) -> KeptHits:
        """Every part's hits in one, ordered by (query, kept id): the same order
        whichever partition found a hit."""
        found = list(parts)
        queries = np.concatenate([np.empty(0, np.int64), *(p.queries for p in found)])
        kept_ids = np.concatenate([np.empty(0, np.int64), *(p.kept_ids for p in found)])
        order = np.lexsort((kept_ids, queries))
        return cls(
            queries=queries[order],
            kept_ids=kept_ids[order],
            distances=np.concatenate([np.empty(0, np.int16), *(p.distances for p in found)])[order],
            checked_seqs=np.concatenate([np.empty(0, np.int64), *(p.checked_seqs for p in found)])[
                order
            ],
        )

    def __len__(self) -> int:
        return len(self.kept_ids)

    def hits(self) -> list[KeptHit]:
        return [
            KeptHit(query=q, kept_id=k, distance=d, checked_seq=s)
            for q, k, d, s in zip(
                self.queries.tolist(),
                self.kept_ids.tolist(),
                self.distances.tolist(),
                self.checked_seqs.tolist(),
                strict=True,
            )
        ]


class KeptIndex:
    """Kept signals' PDQ hashes, searchable by a new entry within its bank's threshold."""

    def __init__(
        self,
        hashes: npt.NDArray[np.uint64],
        kept_ids: npt.NDArray[np.int64],
        *,
        threshold: int = DEFAULT_THRESHOLD,
        checked_seqs: npt.NDArray[np.int64] | None = None,
    ) -> None:
        self.kept_ids = kept_ids
        self.checked_seqs = (
            np.zeros(len(kept_ids), dtype=np.int64) if checked_seqs is None else checked_seqs
        )
        if len(self.checked_seqs) != len(kept_ids):
            raise ValueError("kept_ids and checked_seqs must be parallel")
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
        seqs: list[int] = []
        for batch in batches:
            for kept_id, seq, hashes in batch:
                for value, quality in hashes:
                    if int(quality) >= PDQ_MIN_QUALITY:
                        values.append(str(value))
                        ids.append(kept_id)
                        seqs.append(seq)
        return cls(
            pack(values),
            np.asarray(ids, dtype=np.int64),
            threshold=threshold,
            checked_seqs=np.asarray(seqs, dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.kept_ids)

    @property
    def nbytes(self) -> int:
        """Memory held by the index's arrays."""
        arrays = self._index.arrays() if len(self._index) else {}
        return (
            int(sum(a.nbytes for a in arrays.values()))
            + int(self.kept_ids.nbytes)
            + int(self.checked_seqs.nbytes)
        )

    def search_packed(
        self, queries: npt.NDArray[np.uint64], thresholds: npt.NDArray[np.int16]
    ) -> KeptHits:
        """Every kept signal within ``thresholds[i]`` bits of packed new entry ``queries[i]``."""
        if not len(queries) or not len(self.kept_ids):
            return KeptHits.merged([])
        which, rows, distances = self._index.search_many(queries, thresholds)
        return KeptHits(
            queries=which.astype(np.int64),
            kept_ids=self.kept_ids[rows],
            distances=distances,
            checked_seqs=self.checked_seqs[rows],
        )

    def search(self, queries: Sequence[str], thresholds: Sequence[int]) -> list[KeptHit]:
        """Every kept signal within ``thresholds[i]`` bits of new entry ``queries[i]``."""
        if not queries:
            return []
        found = self.search_packed(pack(list(queries)), np.asarray(thresholds, dtype=np.int16))
        return found.hits()
